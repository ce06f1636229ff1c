"""``build_sourcedir``: a reproducible, flat ``sourcedir.tar.gz`` of a template's step code."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from pipelines.packaging import build_sourcedir, sourcedir_bytes, step_files

REPO_ROOT = Path(__file__).resolve().parents[2]
STEP_FILES = (
    "contract.py",
    "evaluate.py",
    "features.py",
    "inference.py",
    "preprocess.py",
    "requirements.txt",
    "train.py",
)


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tabular"
    root.mkdir()
    for name in STEP_FILES:
        (root / name).write_text(f"# {name}\n")
    (root / "definition.py").write_text("import sagemaker\n")
    (root / "__init__.py").write_text('"""The tabular template."""\n')
    (root / "test_preprocess.py").write_text("def test(): ...\n")
    (root / "train_test.py").write_text("def test(): ...\n")
    (root / "conftest.py").write_text("")
    (root / "README.md").write_text("docs\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00")
    (root / "helpers").mkdir()
    (root / "helpers" / "nested.py").write_text("")
    return root


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return archive.getmembers()


def test_archive_holds_exactly_the_step_files_flat_and_sorted(template_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "sourcedir.tar.gz"
    build_sourcedir(template_dir, out)
    names = [m.name for m in members(out.read_bytes())]
    assert names == sorted(STEP_FILES)
    assert "definition.py" not in names and "__init__.py" not in names
    assert not [n for n in names if "/" in n or "pycache" in n]


def test_same_input_gives_the_same_bytes_whatever_the_clock_and_output_path(template_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "a" / "sourcedir.tar.gz"
    second = tmp_path / "b" / "other-name.tar.gz"
    digest = build_sourcedir(template_dir, first)
    for path in template_dir.iterdir():
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert build_sourcedir(template_dir, second) == digest
    assert first.read_bytes() == second.read_bytes()
    assert digest == hashlib.sha256(first.read_bytes()).hexdigest()


def test_a_code_change_changes_the_digest(template_dir: Path, tmp_path: Path) -> None:
    before = build_sourcedir(template_dir, tmp_path / "before.tar.gz")
    (template_dir / "train.py").write_text("# changed\n")
    assert build_sourcedir(template_dir, tmp_path / "after.tar.gz") != before
    (template_dir / "definition.py").write_text("# build-time only\n")
    (template_dir / "train.py").write_text("# train.py\n")
    assert build_sourcedir(template_dir, tmp_path / "again.tar.gz") == before


def test_members_carry_no_owner_clock_or_mode_of_the_build_machine(template_dir: Path) -> None:
    data = sourcedir_bytes(template_dir)
    for member in members(data):
        assert member.isfile()
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        assert member.mode == 0o644
    # gzip header: bytes 4-8 are the mtime; FLG (byte 3) has no FNAME bit, so no file name is stored.
    assert data[4:8] == b"\x00\x00\x00\x00"
    assert data[3] & 0x08 == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        extracted = archive.extractfile("train.py")
        assert extracted is not None and extracted.read() == b"# train.py\n"
    assert gzip.decompress(data)  # a plain gzip stream


def test_step_files_requires_a_directory_with_scripts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^template_dir: "):
        step_files(tmp_path / "missing")
    (tmp_path / "requirements.txt").write_text("")
    with pytest.raises(ValueError, match="no step scripts"):
        sourcedir_bytes(tmp_path)


def test_the_tabular_template_packages_without_its_definition() -> None:
    names = [path.name for path in step_files(REPO_ROOT / "pipelines" / "tabular")]
    assert "contract.py" in names
    assert "definition.py" not in names and "__init__.py" not in names
    assert all(name.endswith(".py") or name == "requirements.txt" for name in names)


def test_write_atomically_leaves_no_temp_files_and_skips_unchanged(tmp_path: Path) -> None:
    from pipelines.packaging import write_atomically

    target = tmp_path / "build" / "sourcedir.tar.gz"
    write_atomically(target, b"one")
    first = target.stat().st_mtime_ns
    write_atomically(target, b"one")  # unchanged: not rewritten (concurrent readers keep their file)
    assert target.stat().st_mtime_ns == first
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["sourcedir.tar.gz"]
