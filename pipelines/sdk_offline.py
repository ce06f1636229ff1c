"""Build a SageMaker pipeline definition with the SDK (v3) offline and deterministically: the shared harness.

Every template's ``definition.py`` builds through :func:`build_offline`; only the pipeline itself is
template-specific. The SDK is chatty with AWS while it builds (IAM role lookups, default-bucket probing,
telemetry over HTTPS, config files from ``~/.config/sagemaker``) and needs a region even to be imported
(it creates boto3 clients at import time). So :func:`build_offline`, under a module lock:

* hands the SDK *sentinels* (:func:`sentinel`, :func:`role_sentinel`, :func:`uri_sentinel`,
  :func:`sequence_sentinels`) instead of the caller's account-specific strings and substitutes the real
  values into the finished JSON, so any string (a placeholder, or a raw CDK token) is safe, and nothing
  the SDK does can depend on it;
* runs with a scrubbed environment (no ``AWS_*``/``SAGEMAKER_*`` variables but a fixed region, dummy
  credentials, ``/dev/null`` AWS and SDK config files, IMDS disabled, ``SAGEMAKER_VALIDATE_ROLE=false``),
  with logging below ERROR disabled and warnings ignored, and restores all of it,
  ``boto3.DEFAULT_SESSION`` and the root logger afterwards (importing the SDK calls
  ``logging.basicConfig``). This state is process-global for the build's duration (well under a
  second), which is fine for CDK synth and the CLI; do not build from a thread while another one
  depends on ``AWS_*`` variables;
* gives the template a ``PipelineSession`` (:func:`pipeline_session`; created once per process and
  region and reused: creating one costs ~0.3 s) on a boto3 session (also installed as
  ``boto3.DEFAULT_SESSION``) whose botocore event hook refuses every request, with an explicit SDK
  config (telemetry opted out), so an attempted AWS call fails loudly with :class:`OfflineBuildError`
  instead of leaking — templates pass explicit S3 locations everywhere;
* memoizes the SDK's validation of that constant config against its JSON schema, which the SDK
  repeats on each of ~45 config lookups (about 1.2 s per build otherwise), the image-registry lookups
  (:func:`image_uri`), and spares the SDK's steps a local-mode session they build only to read a method
  name (:func:`no_local_session_probe`, ~0.4 s per build): synth cost per team (``bench/bench_synth.py``);
* serializes with :func:`canonical_json`: same inputs, byte-identical JSON, whatever the machine, the
  environment or the clock.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from naming import S3_SCHEME

Inputs = TypeVar("Inputs")

SENTINEL_MARK: Final = "flywheel-sentinel-"
_DUMMY_CREDENTIAL: Final = "flywheel-offline-build"
# Telemetry off; a non-empty config also stops the SDK from reading ~/.config/sagemaker/config.yaml.
SDK_CONFIG: Final[dict[str, Any]] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
BUILD_LOCK = threading.Lock()


class OfflineBuildError(RuntimeError):
    """The SageMaker SDK tried to reach AWS while the definition was being built."""


# Sentinels: the SDK only ever sees these well-formed stand-ins for account-specific values. ----------


def sentinel(label: str) -> str:
    """A stand-in string; the trailing ``-x`` keeps one from being a prefix of another (``subnet-1``/``-10``)."""
    return f"{SENTINEL_MARK}{label}-x"


def role_sentinel(label: str = "role") -> str:
    """A stand-in IAM role ARN (the SDK parses role ARNs)."""
    return f"arn:aws:iam::000000000000:role/{sentinel(label)}"


def object_name(uri: str) -> str:
    """The file name a container sees for the S3 object ``uri`` (its last key segment)."""
    return uri.rsplit("/", 1)[-1]


def uri_sentinel(label: str, uri: str) -> str:
    """A stand-in ``s3://`` URI keeping ``uri``'s object name: the containers address files by it."""
    return f"{S3_SCHEME}{sentinel(label)}/{object_name(uri)}"


def sequence_sentinels(label: str, values: Sequence[str]) -> tuple[str, ...]:
    """One stand-in per item of ``values`` (``<label>-0``, ``<label>-1``, ...)."""
    return tuple(sentinel(f"{label}-{i}") for i in range(len(values)))


def replacements(sentinels: Mapping[str, Any], inputs: Any) -> list[tuple[str, str]]:
    """``(stand-in, real value)`` pairs for the fields of ``inputs`` named in ``sentinels``."""
    pairs: list[tuple[str, str]] = []
    for name, stand_in in sentinels.items():
        real = getattr(inputs, name)
        if isinstance(stand_in, tuple):
            pairs.extend(zip(stand_in, real, strict=True))
        else:
            pairs.append((stand_in, real))
    return pairs


def substitute(node: Any, pairs: Sequence[tuple[str, str]]) -> Any:
    """``node`` (parsed JSON) with every stand-in replaced by its real value."""
    if isinstance(node, str):
        if SENTINEL_MARK in node:
            for stand_in, real in pairs:
                node = node.replace(stand_in, real)
        return node
    if isinstance(node, list):
        return [substitute(item, pairs) for item in node]
    if isinstance(node, dict):
        return {key: substitute(value, pairs) for key, value in node.items()}
    return node


def canonical_json(document: Any) -> str:
    """Sorted keys, compact separators: the byte-stable form of a definition."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


#: Folder of raw SDK builds for :func:`build_cache` (None: build every time, the default).
_RAW_CACHE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("flywheel_sdk_build_cache", default=None)
_SDK_DISTRIBUTIONS: Final = ("sagemaker-core", "sagemaker-train", "sagemaker-serve", "sagemaker-mlops")


@contextlib.contextmanager
def build_cache(folder: Path | None) -> Iterator[None]:
    """Within the block, :func:`build_offline` keeps the SDK's output under ``folder`` and reuses it.

    The SDK sees only sentinel inputs, so its output is a pure function of the builder's code (the
    folder of the ``build`` function and this module), the SDK's versions, the region and the non-account
    fields of the inputs: the key of an entry. Real values are substituted after, as without the cache.
    The local runtime uses it so that ``flywheel up``/``run``/``demo`` do not import the SDK and rebuild an
    unchanged definition on every start (the embedded AWS's KMS key ids differ per start; sentinels hide
    them). Entries are written atomically; an unreadable one is rebuilt.
    """
    token = _RAW_CACHE.set(folder)
    try:
        yield
    finally:
        _RAW_CACHE.reset(token)


def _raw_key(build: Callable[[Any], str], sentinel_inputs: Any, region: str) -> str:
    import hashlib
    import importlib.metadata
    import inspect

    h = hashlib.sha256(b"flywheel-sdk-build-v1\0" + region.encode() + b"\0")
    source = inspect.getsourcefile(build)
    files = sorted(Path(source).parent.glob("*.py")) if source else []
    for path in [*files, Path(__file__)]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in _SDK_DISTRIBUTIONS:
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}\0".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=missing\0".encode())
    h.update(json.dumps(dataclasses.asdict(sentinel_inputs), sort_keys=True, default=repr).encode())
    return h.hexdigest()


def _build_raw(build: Callable[[Any], str], sentinel_inputs: Any, region: str) -> str:
    folder = _RAW_CACHE.get()
    path = folder / f"{_raw_key(build, sentinel_inputs, region)}.json" if folder is not None else None
    if path is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
            text = path.read_text(encoding="utf-8")
            json.loads(text)
            return text
    with BUILD_LOCK, isolated_sdk_environment(region), memoized_sdk_config_validation(), no_local_session_probe():
        raw = build(sentinel_inputs)
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(raw, encoding="utf-8")
            os.replace(tmp, path)
    return raw


def build_offline(
    inputs: Inputs,
    *,
    region: str,
    sentinels: Mapping[str, Any],
    build: Callable[[Inputs], str],
) -> str:
    """Run ``build`` (the template's SDK composition, returning the SDK's JSON) on ``inputs`` whose
    ``sentinels`` fields (a frozen dataclass's fields → stand-ins) are replaced, isolated from AWS and
    the process, then substitute the real values and return the canonical JSON.

    Raises:
        OfflineBuildError: the SDK tried to call AWS (a bug to fix in the template, never a fallback).
        RuntimeError: the SDK altered a sentinel, so the inputs cannot be substituted.
    """
    raw = _build_raw(build, dataclasses.replace(inputs, **sentinels), region)  # type: ignore[type-var]
    text = canonical_json(substitute(json.loads(raw), replacements(sentinels, inputs)))
    if SENTINEL_MARK in text:
        raise RuntimeError("the SageMaker SDK altered a sentinel value; cannot substitute inputs")
    return text


# Isolation of the SDK from the process: environment, network, logging, config validation. ----------


def offline_environment(region: str) -> dict[str, str]:
    """The ``AWS_*``/``SAGEMAKER_*`` variables the SDK sees while it builds."""
    return {
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # Importing the SDK creates boto3 clients (sagemaker.ai_registry): keep the credential chain
        # away from profiles, credential_process, SSO caches and the instance metadata service.
        "AWS_ACCESS_KEY_ID": _DUMMY_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": _DUMMY_CREDENTIAL,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        # ModelTrainer otherwise validates the role through iam:SimulatePrincipalPolicy.
        "SAGEMAKER_VALIDATE_ROLE": "false",
        # Sessions the SDK creates on its own (ProcessingStep builds a local-mode session just to
        # read a method name) would otherwise load ~/.config/sagemaker and /etc/xdg/sagemaker.
        "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": os.devnull,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": os.devnull,
    }


@contextlib.contextmanager
def isolated_sdk_environment(region: str) -> Iterator[None]:
    """Run the SDK with a scrubbed environment and restore the process state afterwards."""
    import boto3

    saved_env = {key: value for key, value in os.environ.items() if key.startswith(("AWS_", "SAGEMAKER_"))}
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved_disable = logging.root.manager.disable
    saved_default_session = boto3.DEFAULT_SESSION
    for key in saved_env:
        del os.environ[key]
    os.environ.update(offline_environment(region))
    # SDK code that falls back to the default boto3 session (the sagemaker.ai_registry clients created
    # at import, config loading) gets the refusing session too.
    boto3.DEFAULT_SESSION = offline_boto_session(region)
    logging.disable(logging.WARNING)  # the SDK logs INFO/WARNING chatter for every step
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for key in [key for key in os.environ if key.startswith(("AWS_", "SAGEMAKER_"))]:
            del os.environ[key]
        os.environ.update(saved_env)
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        logging.disable(saved_disable)
        boto3.DEFAULT_SESSION = saved_default_session


#: SDK configs already validated in this process (a config that passed once passes again: the schema
#: is the SDK's constant).
_VALIDATED_CONFIGS: set[str] = set()


@contextlib.contextmanager
def memoized_sdk_config_validation() -> Iterator[None]:
    """Validate each distinct SDK config once per process instead of on every lookup (same result)."""
    from sagemaker.core.config.config_manager import SageMakerConfig

    original = SageMakerConfig.__dict__["validate_sagemaker_config"]

    def validate(sagemaker_config: dict[str, Any] | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=repr)
        if key not in _VALIDATED_CONFIGS:
            original.__func__(sagemaker_config)
            _VALIDATED_CONFIGS.add(key)

    SageMakerConfig.validate_sagemaker_config = staticmethod(validate)
    try:
        yield
    finally:
        SageMakerConfig.validate_sagemaker_config = original


class _LocalClientMethodNames:
    """What ``ProcessingStep``/``TransformStep`` read of a ``LocalSagemakerClient()``: method names only."""

    def create_processing_job(self) -> None:
        """Stands for ``LocalSagemakerClient.create_processing_job`` (only its ``__name__`` is read)."""

    def create_transform_job(self) -> None:
        """Stands for ``LocalSagemakerClient.create_transform_job`` (only its ``__name__`` is read)."""


@contextlib.contextmanager
def no_local_session_probe() -> Iterator[None]:
    """The SDK's ``ProcessingStep``/``TransformStep`` build a ``LocalSagemakerClient()`` (a local-mode
    session: boto3 clients and resources, ~0.2 s) only to read one method's name; give them the names."""
    from sagemaker.core.local.local_session import LocalSagemakerClient
    from sagemaker.mlops.workflow import steps

    for name in ("create_processing_job", "create_transform_job"):
        if getattr(LocalSagemakerClient, name).__name__ != name:  # the SDK changed: do not pretend
            yield
            return
    original = steps.LocalSagemakerClient
    steps.LocalSagemakerClient = _LocalClientMethodNames
    try:
        yield
    finally:
        steps.LocalSagemakerClient = original


def _refuse_request(event_name: str = "", request: Any = None, **_: Any) -> None:
    url = getattr(request, "url", "?")
    raise OfflineBuildError(
        f"the SageMaker SDK tried to call AWS ({event_name.removeprefix('before-send.')} {url}) while "
        "building the pipeline definition; give it the value explicitly instead"
    )


@functools.cache
def offline_boto_session(region: str) -> Any:
    """A boto3 session with dummy credentials whose every request raises :class:`OfflineBuildError`.

    Cached per region: botocore caches the service models it loads (~0.3 s per fresh session).
    """
    import boto3

    boto_session = boto3.Session(
        aws_access_key_id=_DUMMY_CREDENTIAL,
        aws_secret_access_key=_DUMMY_CREDENTIAL,
        region_name=region,
    )
    boto_session.events.register("before-send", _refuse_request)
    return boto_session


@functools.cache
def pipeline_session(region: str) -> Any:
    """The ``PipelineSession`` templates build on: one per process and region (call inside a build).

    Its boto3 session is :func:`offline_boto_session`; its SDK config is :data:`SDK_CONFIG`.
    """
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    return PipelineSession(boto_session=offline_boto_session(region), sagemaker_config=SDK_CONFIG)


@functools.cache
def image_uri(framework: str, version: str, region: str, scope: str) -> str:
    """Look the framework image up in the SDK's bundled registry (offline; call inside a build).

    Cached: the lookup reads the SDK's bundled JSON and builds a botocore endpoint resolver (~0.08 s).

    Raises ValueError naming ``<framework>_framework_version`` or ``region``.
    """
    from sagemaker.core import image_uris

    field = f"{framework}_framework_version"
    known = image_uris.list_versions(framework, scope)
    if version not in known:
        raise ValueError(f"{field}: the SDK knows no {framework} {scope} image {version!r}; known: {known}")
    try:
        uri = image_uris.retrieve(
            framework, region=region, version=version, image_scope=scope, instance_type="ml.m5.large"
        )
    except ValueError as error:
        raise ValueError(f"region: no {framework} {version} image in {region!r}: {error}") from error
    return str(uri)
