"""What the executor reads from a SageMaker image URI: the framework, its version, built-in algorithms.

The local executor runs a job with the local environment's libraries, not the image's: an image whose
framework version differs from the local library (``sagemaker-xgboost:1.7-1`` against XGBoost 3.2 here)
may train or load models differently, so :func:`framework_notes` names both — a warning in the job's log and
the step's metadata, never a failure.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Final

#: Image repository → (framework, local distributions that provide it, first one installed wins).
FRAMEWORKS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "sagemaker-xgboost": ("XGBoost", ("xgboost-cpu", "xgboost")),
    "xgboost": ("XGBoost", ("xgboost-cpu", "xgboost")),
    "sagemaker-scikit-learn": ("scikit-learn", ("scikit-learn",)),
    "pytorch-training": ("PyTorch", ("torch",)),
    "pytorch-inference": ("PyTorch", ("torch",)),
    "tensorflow-training": ("TensorFlow", ("tensorflow", "tensorflow-cpu")),
    "tensorflow-inference": ("TensorFlow", ("tensorflow", "tensorflow-cpu")),
    "huggingface-pytorch-training": ("PyTorch", ("torch",)),
}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def repository_and_tag(image: str) -> tuple[str, str]:
    """``(repository name, tag)`` of an image URI (``.../sagemaker-xgboost:1.7-1`` → ``sagemaker-xgboost``,
    ``1.7-1``); the tag is '' when the URI has none (or a digest)."""
    path = image.strip().split("@", 1)[0]
    name = path.rsplit("/", 1)[-1]
    repository, _, tag = name.partition(":")
    return repository, tag


def is_builtin_xgboost(image: str) -> bool:
    """Whether ``image`` is SageMaker's XGBoost image (algorithm mode when no ``sagemaker_program``)."""
    return repository_and_tag(image)[0] in ("sagemaker-xgboost", "xgboost")


def framework_version(image: str) -> tuple[str, str] | None:
    """``(framework, major.minor)`` the image carries, or None for an image this module does not know."""
    repository, tag = repository_and_tag(image)
    known = FRAMEWORKS.get(repository)
    match = _VERSION.match(tag)
    if known is None or match is None:
        return None
    return known[0], f"{match[1]}.{match[2]}"


def local_version(framework: str) -> str | None:
    """The installed version of ``framework``'s library (None if it is not installed)."""
    for _repository, (name, distributions) in FRAMEWORKS.items():
        if name != framework:
            continue
        for distribution in distributions:
            try:
                return importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
    return None


def framework_notes(image: str) -> list[str]:
    """Warnings about running ``image``'s job with the local libraries ([] when the versions agree)."""
    found = framework_version(image)
    if found is None:
        return []
    framework, wanted = found
    have = local_version(framework)
    repository, tag = repository_and_tag(image)
    if have is None:
        return [
            f"warning: image {repository}:{tag} runs {framework} {wanted}, which is not installed locally: "
            "the job runs with the local environment's libraries and may fail to import it"
        ]
    match = _VERSION.match(have)
    if match is None or f"{match[1]}.{match[2]}" != wanted:
        return [
            f"warning: image {repository}:{tag} runs {framework} {wanted}; the local environment has "
            f"{framework} {have}: the job runs with {have}, so results and model files may differ from "
            "SageMaker's (pin the image to the local version, or the local version to the image's)"
        ]
    return []
