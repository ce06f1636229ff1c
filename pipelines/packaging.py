"""Packaging of a pipeline template's step code into a reproducible ``sourcedir.tar.gz``.

The CDK construct uploads the archive next to the pipeline and the local runtime unpacks the same
bytes, so the archive must be byte-for-byte reproducible: a change of step code changes its sha256 (a
new code location, a new pipeline definition) and nothing else does. Members are flat (no
directories), sorted, with fixed mtime, owner and mode; the gzip header carries no name and mtime 0.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Final

SOURCEDIR_NAME: Final = "sourcedir.tar.gz"
REQUIREMENTS_FILE: Final = "requirements.txt"
# Modules that never run inside a container: the SDK-importing definition, the template contract
# (``template.py``, imported by config, stacks and the runtime), the repo's package marker (the step
# scripts import each other flat: ``from contract import ...``), pytest's conftest.
EXCLUDED_FILES: Final[frozenset[str]] = frozenset({"definition.py", "template.py", "__init__.py", "conftest.py"})
_FIXED_MTIME: Final = 0
_FILE_MODE: Final = 0o644


def step_files(template_dir: Path) -> list[Path]:
    """The files of ``template_dir`` that belong in its sourcedir, sorted by name.

    Top-level ``*.py`` files except :data:`EXCLUDED_FILES` and test modules (``test_*.py``,
    ``*_test.py``), plus ``requirements.txt`` when present. Subdirectories (``__pycache__``, ...)
    are never included: the archive is flat.
    """
    if not template_dir.is_dir():
        raise ValueError(f"template_dir: {template_dir} is not a directory")
    selected = [
        path
        for path in template_dir.iterdir()
        if path.is_file()
        and (
            path.name == REQUIREMENTS_FILE
            or (
                path.suffix == ".py"
                and path.name not in EXCLUDED_FILES
                and not path.name.startswith("test_")
                and not path.stem.endswith("_test")
            )
        )
    ]
    return sorted(selected, key=lambda path: path.name)


def sourcedir_bytes(template_dir: Path) -> bytes:
    """The deterministic ``sourcedir.tar.gz`` of ``template_dir`` as bytes."""
    files = step_files(template_dir)
    if not any(path.suffix == ".py" for path in files):
        raise ValueError(f"template_dir: {template_dir} holds no step scripts")
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(name=path.name)
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = _FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    gzip_buffer = io.BytesIO()
    # filename="" and mtime=0 keep the output path and the clock out of the gzip header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=gzip_buffer, compresslevel=9, mtime=0) as stream:
        stream.write(tar_buffer.getvalue())
    return gzip_buffer.getvalue()


def build_sourcedir(template_dir: Path, out_path: Path) -> str:
    """Write the template's ``sourcedir.tar.gz`` to ``out_path`` and return its sha256 (hex)."""
    data = sourcedir_bytes(template_dir)
    write_atomically(out_path, data)
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename: concurrent synths (test workers, a CDK synth
    next to a local run) never read a half-written archive; an unchanged file is left alone."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
