"""Deterministic, Docker-free deployment packages of the lifecycle Lambdas.

A handler's package is a zip of exactly what it imports from the project: ``lambdas/__init__.py``,
``lambdas/common/``, ``lambdas/lifecycle/``, the handler's own folder and ``naming/`` (the
``lambdas-standalone`` import contract guarantees nothing else is needed). Third-party code comes from
the AWS-published Powertools layer (:func:`powertools_layer_arn`): boto3 is in the runtime, and
the layer is a fixed, AWS-built artifact, so no pip resolution or Docker build runs at synth.

The zip is byte-for-byte reproducible (the rules of :mod:`pipelines.packaging`): members sorted, fixed
timestamp (1980-01-01, the zip epoch), mode 0644, no directory entries, ``__pycache__`` and tests left
out. It is written under ``.flywheel/build/lambdas/`` atomically (:func:`write_atomically`) and given
to ``Code.from_asset`` as a file, so CDK uploads these exact bytes and the asset hash changes only when
the code does.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pipelines.packaging import write_atomically
from stacks import PROJECT_ROOT

#: The project folders every handler ships (relative to the project root) next to its own folder.
SHARED_FOLDERS: Final[tuple[str, ...]] = ("lambdas/common", "lambdas/lifecycle", "naming")
#: Single files every handler ships.
SHARED_FILES: Final[tuple[str, ...]] = ("lambdas/__init__.py",)
HANDLERS: Final[tuple[str, ...]] = ("data_arrival", "deploy", "erasure", "batch_scoring")
BUILD_DIR: Final = PROJECT_ROOT / ".flywheel" / "build" / "lambdas"
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
_MODE: Final = 0o644 << 16

#: Powertools for AWS Lambda (Python) v3, as AWS publishes it per Python version and architecture
#: (account 017000801446; one layer version number per Powertools release, the same for every Python
#: version and architecture). The default is the newest release whose layer version could be corroborated
#: offline: 3.31.1 ↔ ``AWSLambdaPowertoolsPythonV3-python314-arm64:36`` (a public project pins
#: ``aws-lambda-powertools==3.31.1`` next to that ARN; AWS's own docs PRs fix e.g. 3.4.1 ↔ 6). Not verified
#: against AWS: an environment overrides it with ``powertools_layer_version`` (config/environments.yaml)
#: after ``aws lambda get-layer-version-by-arn`` (lambdas/README.md, "Packaging"). The handlers'
#: ``requirements.txt`` pins the same release; the tests run on the locked (newer 3.x) Powertools, and the
#: handlers use only APIs that 3.0 already has (Logger, Metrics, Tracer, idempotent_function).
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
POWERTOOLS_RELEASE: Final = "3.31.1"
POWERTOOLS_LAYER_VERSION: Final = 36
#: The Python of the runtime and of the layer (one constant: they must match).
PYTHON_VERSION: Final = "python314"
ARCHITECTURE: Final = "arm64"


def powertools_layer_arn(region: str, partition: str = "aws", *, version: int = POWERTOOLS_LAYER_VERSION) -> str:
    """``arn:aws:lambda:<region>:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:<version>``."""
    name = f"AWSLambdaPowertoolsPythonV3-{PYTHON_VERSION}-{ARCHITECTURE}"
    return f"arn:{partition}:lambda:{region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:{name}:{version}"


def _wanted(path: Path) -> bool:
    return (
        path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix in (".py", ".txt")
        and not path.name.startswith("test_")
        and path.name != "conftest.py"
    )


def package_files(handler: str, root: Path = PROJECT_ROOT) -> list[str]:
    """The project-relative paths (POSIX) a handler's package holds, sorted."""
    if handler not in HANDLERS:
        raise ValueError(f"unknown handler {handler!r}; handlers: {', '.join(HANDLERS)}")
    files = {name for name in SHARED_FILES if (root / name).is_file()}
    for folder in (*SHARED_FOLDERS, f"lambdas/{handler}"):
        base = root / folder
        if not base.is_dir():
            raise ValueError(f"{folder} is missing under {root}")
        files |= {path.relative_to(root).as_posix() for path in base.rglob("*") if _wanted(path)}
    return sorted(files)


def package_bytes(handler: str, root: Path = PROJECT_ROOT) -> bytes:
    """The deterministic zip of a handler's package."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in package_files(handler, root):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = _MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode bits are read as such on every build host
            archive.writestr(info, (root / name).read_bytes(), compresslevel=9)
    return buffer.getvalue()


@dataclass(frozen=True)
class BuiltPackage:
    """Where a handler's package was written, its sha256 and size in bytes."""

    path: Path
    sha256: str
    size: int


def build_package(handler: str, out_dir: Path = BUILD_DIR, root: Path = PROJECT_ROOT) -> BuiltPackage:
    """Write ``<out_dir>/<handler>.zip`` (atomically, only if changed)."""
    data = package_bytes(handler, root)
    path = out_dir / f"{handler}.zip"
    write_atomically(path, data)
    return BuiltPackage(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
