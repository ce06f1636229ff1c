"""The embedded AWS of the local runtime: moto, in-process or as a server on 127.0.0.1.

:class:`EmbeddedAws` is where the runtime's AWS calls go:

* ``EmbeddedAws.in_process()`` — moto's ``mock_aws`` in this process (tests, one-shot commands). One
  mock is shared per process (reference-counted), so nested users (a test, then a CLI command it
  invokes) see the same resources;
* ``EmbeddedAws.serve(port=0)`` — a moto server bound to 127.0.0.1 (``flywheel up``/``demo``), reachable
  with ``aws --endpoint-url``; a port that is taken raises :class:`PortInUseError` naming it;
* ``EmbeddedAws.connect(url)`` — a server started by another process (``flywheel up``).

:func:`provision_team` creates what one team's runtime needs, with the names and settings the CDK
stacks use where they can be the same: one bucket per data-lake zone, each with its own KMS key and
default SSE-KMS (bucket key on, versioning on, public access blocked), a random per-team PII HMAC key
at ``s3://<raw>/<team>/_keys/pii-hmac.key`` (generated here, never in code, kept when it exists), an
execution role, the model package group and, for each of the team's templates, through the template
contract (:class:`pipelines.template.PipelineTemplate`, wherever its folder is): its step code and the
team's files (``team_files``: ``contract.json`` for ``tabular``) in the artifacts bucket and the
pipeline created from the same definition JSON the stack deploys (``definition`` with the local
:class:`~pipelines.template.DeploymentValues`). Provisioning is idempotent.

What is deliberately not reproduced: the ``aws:SecureTransport`` Deny bucket policy (moto ignores the
condition and would refuse every request), object lock on the artifacts bucket, and IAM policies (moto
does not enforce them; the stack tests prove the deployed ones).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

import naming
from flywheel.errors import LOCALHOST, EmbeddedAwsError, OfflineViolationError, PortInUseError
from naming import ZONES, Names
from pipelines.template import DeploymentValues, PipelineTemplate

if TYPE_CHECKING:
    import boto3

    from config.models import TeamConfig

ENV_NAME: Final = "local"
#: The physical names of the local environment (the same module names the deployed resources).
NAMES: Final = Names(ENV_NAME)
REGION: Final = "eu-west-1"
#: moto's default account id: ARNs of the embedded resources carry it.
ACCOUNT: Final = "123456789012"
#: The KMS key of the jobs' volumes and outputs (alias ``alias/flywheel-local-ml``).
ML_KEY_PURPOSE: Final = "ml"
#: Stand-ins for the VPC the stack creates: the definition requires them; nothing local uses them.
LOCAL_SUBNETS: Final[tuple[str, ...]] = ("subnet-0f1a0c0a1000000a1",)
LOCAL_SECURITY_GROUPS: Final[tuple[str, ...]] = ("sg-0f1a0c0a1000000a1",)
_DUMMY_CREDENTIAL: Final = "flywheel-local"
#: In the user agent of every client of the local runtime: ``flywheel up``'s live layer
#: (:mod:`flywheel.live.routing`) passes their calls to moto, since the runtime runs its own executions.
RUNTIME_USER_AGENT: Final = "flywheel-runtime"
_SAGEMAKER_TRUST: Final = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


# The embedded AWS -----------------------------------------------------------------------------------

_MOCK_LOCK = threading.Lock()
_MOCK: Any = None
_MOCK_USERS = 0


class _DeferredKeyPair:
    """A KMS key's key pair, generated on first use (sign, verify, GetPublicKey) instead of at CreateKey.

    moto's KMS generates an RSA-2048 key pair for every key it creates, symmetric ones too, where AWS has
    none to use: tens of milliseconds of CPU per key, paid seven times by every provisioning (one key per
    zone and the jobs' key) although the local runtime only encrypts with symmetric keys. An asymmetric
    key still gets its pair, the first time it is used.
    """

    def __init__(self, make: Any, key_spec: str) -> None:
        self._make = make
        self._key_spec = key_spec
        self._pair: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._pair is None:
                self._pair = self._make(self._key_spec)
        return getattr(self._pair, name)


def _defer_kms_key_pairs() -> None:
    """Make moto's KMS generate a key's pair when it is first used (see :class:`_DeferredKeyPair`); idempotent."""
    from moto.kms import models

    make = models.generate_private_key
    if not getattr(make, "_flywheel_deferred", False):

        def deferred(key_spec: str) -> Any:
            return _DeferredKeyPair(make, key_spec)

        deferred._flywheel_deferred = True  # type: ignore[attr-defined]
        models.generate_private_key = deferred


def _start_mock() -> None:
    global _MOCK, _MOCK_USERS
    from moto import mock_aws

    with _MOCK_LOCK:
        if _MOCK is None:
            _defer_kms_key_pairs()
            _MOCK = mock_aws()
            _MOCK.start()
        _MOCK_USERS += 1


def _mock_running() -> bool:
    """Whether this process's in-process mock runs (another user started it)."""
    with _MOCK_LOCK:
        return _MOCK is not None


def _stop_mock() -> None:
    global _MOCK, _MOCK_USERS
    with _MOCK_LOCK:
        _MOCK_USERS -= 1
        if _MOCK_USERS <= 0 and _MOCK is not None:
            _MOCK.stop()
            _MOCK, _MOCK_USERS = None, 0


@functools.cache
def _boto3_session(region: str, mocked: bool) -> boto3.session.Session:
    """One boto3 session per process, region and kind: it caches service models (~0.2 s per client otherwise).

    A session registers botocore's built-in event handlers when it is created, and moto's in-process mock
    is one of them only if moto was imported before: a session made earlier sends its clients' requests to
    the real endpoints even while the mock runs. In-process sessions are therefore made after moto is
    imported, and never shared with server-mode ones. Credentials are passed per client, so nothing of the
    host's credential chain is read.
    """
    if mocked:
        import moto.core.models  # noqa: F401 - registers the stubber among botocore's built-in handlers
    import boto3.session  # here, not at import: a command that makes no AWS call does not pay for it

    session = boto3.session.Session(region_name=region)
    _share_service_data(session)
    return session


def _share_service_data(session: boto3.session.Session) -> None:
    """Let moto read botocore's data files (endpoints, service models) through ``session``'s loader.

    moto keeps a botocore session and loaders of its own, so each service's model and the endpoint list
    were parsed twice, once for the clients and once for moto's backends (about half a second of CPU on
    the first calls of a command). Read-only data: sharing it changes nothing else. Idempotent; nothing
    to do in a process without moto.
    """
    if "moto.core.base_backend" not in sys.modules:
        return  # no moto in this process (a client of another process's server): nothing to share
    from moto.core import base_backend, utils

    if getattr(base_backend.AccountSpecificBackend.get_session, "_flywheel_shared", False):
        # A later session (another region, or server mode) reads through the same loader: one parse of each
        # file per process, whichever session came first.
        session._session.register_component("data_loader", utils.create_loader())
        return
    loader = session._session.get_component("data_loader")

    def shared_session(cls: Any) -> Any:
        return session

    shared_session._flywheel_shared = True  # type: ignore[attr-defined]
    base_backend.AccountSpecificBackend.get_session = classmethod(shared_session)  # type: ignore[assignment]
    utils.create_loader = lambda *args, **kwargs: loader


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or address) is this machine's loopback: ``localhost``, 127.0.0.0/8, ::1."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mock_stubber() -> Any:
    """moto's botocore stubber (the in-process mock's interceptor), or None if moto is not imported."""
    models = sys.modules.get("moto.core.models")
    return getattr(models, "botocore_stubber", None)


def _mock_active() -> bool:
    stubber = _mock_stubber()
    return _MOCK is not None and stubber is not None and bool(stubber.enabled)


class _LoopbackOnly:
    """Wraps a client's HTTP sender (the one place botocore opens connections): any request that is about
    to leave for a host other than the loopback is refused before a connection (or a DNS lookup) is made.

    In-process, moto answers every request before it reaches the sender; one that gets here anyway (the
    mock stopped, or a service moto does not intercept) would go to the real AWS endpoint: refused.
    """

    def __init__(self, inner: Any, service: str) -> None:
        self._inner = inner
        self._service = service

    def send(self, request: Any) -> Any:
        host = urlsplit(str(request.url)).hostname
        if not is_loopback_host(host):
            raise OfflineViolationError(
                f"refused a {self._service} request to {host}: the local runtime never calls real AWS "
                "(every request must go to the embedded AWS on 127.0.0.1 or to the in-process mock); "
                "this is a bug of the local runtime, please report it"
            )
        return self._inner.send(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedAws:
    """Boto3 clients bound to the embedded AWS (in-process moto or a moto server)."""

    def __init__(self, *, endpoint_url: str | None, region: str = REGION, mode: str, deferred: bool = False) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.mode = mode
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        #: The WSGI application a server serves (``serve``'s ``wrap`` result), None otherwise.
        self.app: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False
        #: In-process and not started yet (:meth:`in_process` with ``lazy``): the first client starts it.
        self._deferred = deferred and endpoint_url is None
        if endpoint_url is None:
            if mode != "in-process":
                raise OfflineViolationError(f"an embedded AWS in mode {mode!r} needs a loopback endpoint URL")
        elif not is_loopback_host(urlsplit(endpoint_url).hostname):
            raise OfflineViolationError(
                f"{endpoint_url} is not on this machine: the embedded AWS listens on 127.0.0.1 only "
                "(the local runtime never calls real AWS); use the URL `flywheel up` prints"
            )
        self._session: Any = None if self._deferred else _boto3_session(region, endpoint_url is None)

    @classmethod
    def in_process(cls, region: str = REGION, *, lazy: bool = False) -> EmbeddedAws:
        """moto inside this process (shared with any other in-process user).

        ``lazy``: start it when the first client is made, so that a command that needs no AWS call (``flywheel
        status`` with no ``flywheel up`` running) neither imports moto nor starts it; a mock that another
        user of this process already runs is joined at once.
        """
        if lazy and not _mock_running():
            return cls(endpoint_url=None, region=region, mode="in-process", deferred=True)
        _start_mock()
        return cls(endpoint_url=None, region=region, mode="in-process")

    @property
    def started(self) -> bool:
        """False while a lazy in-process embedded AWS has made no client: a mock started now would be empty
        (nothing provisioned, nothing registered)."""
        return not self._deferred

    @classmethod
    def serve(cls, port: int = 0, host: str = LOCALHOST, region: str = REGION, *, wrap: Any = None) -> EmbeddedAws:
        """Start a moto server on ``host:port`` (0 = a free port) in a daemon thread; ``wrap(app)`` returns
        the WSGI application served in front of moto's (``flywheel up``'s live layer), kept as :attr:`app`."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # Bind here, in the caller's thread, so a taken port is an immediate, named error (moto's
        # ThreadedMotoServer binds inside its thread and then waits forever for a readiness event;
        # werkzeug itself answers a taken port with sys.exit).
        if port and not port_is_free(port, host):
            raise PortInUseError(port)
        app: Any = DomainDispatcherApplication(create_backend_app)
        if wrap is not None:
            app = wrap(app)
        try:
            server = make_server(
                host,
                port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
            )
        except SystemExit as exc:  # werkzeug's reaction to a port taken between the check and the bind
            raise PortInUseError(port) from exc
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES) or "in use" in str(exc).lower():
                raise PortInUseError(port) from exc
            raise EmbeddedAwsError(f"cannot start the embedded AWS on {host}:{port}: {exc}") from exc
        _defer_kms_key_pairs()
        # The request log of every S3/SageMaker call would flood the console of `up` and `demo`.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        bound_port = server.server_address[1]
        aws = cls(endpoint_url=f"http://{host}:{bound_port}", region=region, mode="server")
        aws._server = server
        aws.app = app
        # serve_forever polls for shutdown every poll_interval (werkzeug's default 0.5 s): that is how long
        # close() waited at the end of every `demo` and `up`.
        aws._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="flywheel-embedded-aws", daemon=True
        )
        aws._thread.start()
        return aws

    @classmethod
    def connect(cls, endpoint_url: str, region: str = REGION) -> EmbeddedAws:
        """Clients for a server started elsewhere; EmbeddedAwsError if it does not answer."""
        aws = cls(endpoint_url=endpoint_url.rstrip("/"), region=region, mode="remote")
        if not aws.is_alive():
            raise EmbeddedAwsError(
                f"no embedded AWS answers at {endpoint_url}: start it with `flywheel up` (or drop --endpoint-url)"
            )
        return aws

    @property
    def port(self) -> int | None:
        """The server's port (None in-process)."""
        if self.endpoint_url is None:
            return None
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def client(self, service: str) -> Any:
        """A cached boto3 client for ``service``."""
        with self._lock:
            if self._deferred and not self._closed:
                _start_mock()
                self._session = _boto3_session(self.region, True)
                self._deferred = False
            if service not in self._clients:
                from botocore.config import Config

                config = Config(
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=300,
                    user_agent_extra=RUNTIME_USER_AGENT,
                    # No CRC32 of every body: the bytes go to moto in this process or over loopback, where
                    # botocore's default checksum of each upload and download cost as much as the transfer
                    # (an 18 MB put 121 -> 60 ms, a get 13 -> 3.5 ms); operations that require one still get it.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                if service == "s3":
                    config = config.merge(Config(s3={"addressing_style": "path"}))
                self._check_offline(service)
                client = self._session.client(
                    service,
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=config,
                    aws_access_key_id=_DUMMY_CREDENTIAL,
                    aws_secret_access_key=_DUMMY_CREDENTIAL,
                )
                if self.endpoint_url is None:
                    self._check_intercepted(client, service)
                client._endpoint.http_session = _LoopbackOnly(client._endpoint.http_session, service)
                self._clients[service] = client
            return self._clients[service]

    def _check_offline(self, service: str) -> None:
        """Refuse to build a client that could reach anything but the embedded AWS."""
        if self._closed:
            raise OfflineViolationError(f"the embedded AWS was closed: no {service} client can be made from it")
        if self.endpoint_url is None and not _mock_active():
            raise OfflineViolationError(
                f"no in-process embedded AWS is active: a {service} client without an endpoint URL would call "
                "real AWS (start it with EmbeddedAws.in_process(), or connect to `flywheel up`)"
            )

    @staticmethod
    def _check_intercepted(client: Any, service: str) -> None:
        """An in-process client must carry moto's interceptor among its handlers (see :func:`_boto3_session`)."""
        event = f"before-send.{client.meta.service_model.service_id.hyphenize()}"
        handlers = list(client.meta.events._emitter._handlers.prefix_search(event))
        if _mock_stubber() not in handlers:
            raise OfflineViolationError(
                f"the in-process {service} client is not intercepted by the embedded AWS (its boto3 session "
                "predates moto's import): refusing it, it would call real AWS"
            )

    def is_alive(self) -> bool:
        """Whether the embedded AWS answers a cheap call."""
        try:
            self.client("sts").get_caller_identity()
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Stop what this object started (the server, or its share of the in-process mock)."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
        elif self.mode == "in-process" and not self._deferred:
            _stop_mock()

    def __enter__(self) -> EmbeddedAws:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Provisioning ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformResources:
    """The environment-wide resources: one bucket and one KMS key per zone, plus the jobs' key."""

    buckets: dict[str, str]
    keys: dict[str, str]
    ml_key_arn: str


@dataclass(frozen=True)
class PipelineResources:
    """One pipeline of a team (one template) in the embedded AWS, and the definition deployed for it."""

    template: PipelineTemplate = field(repr=False)
    pipeline_name: str
    pipeline_arn: str
    role_arn: str
    source_uri: str
    #: :attr:`pipelines.template.TeamFile.key` -> URI of the uploaded per-team file (tabular: ``contract``).
    file_uris: dict[str, str]
    definition: str = field(repr=False)
    inputs: Any = field(repr=False)


@dataclass(frozen=True)
class TeamResources:
    """One team's resources in the embedded AWS: its registry, PII key and one pipeline per template."""

    team: str
    group_name: str
    role_arn: str
    pii_key_uri: str
    platform: PlatformResources = field(repr=False)
    #: Creates (or updates) the team's pipelines in the embedded AWS: run once, on first use of :attr:`pipelines`.
    provision_pipelines: Callable[[], dict[str, PipelineResources]] = field(repr=False, compare=False)

    @functools.cached_property
    def pipelines(self) -> dict[str, PipelineResources]:
        """Template name -> the team's pipeline of that template, in the order of the team's ``pipelines``.

        Created on first use: approving a package needs the team's registry and buckets, not its pipelines
        (uploading the step code and creating the pipelines is ~0.15 s of a two-second command).
        """
        return self.provision_pipelines()

    @property
    def primary(self) -> PipelineResources:
        """The team's first pipeline (``pipelines:`` order): the one a landed batch starts."""
        return next(iter(self.pipelines.values()))

    def pipeline(self, template: str | None = None) -> PipelineResources:
        """The team's pipeline of ``template`` (default: :attr:`primary`); KeyError naming the team's templates."""
        if template is None:
            return self.primary
        if template not in self.pipelines:
            raise KeyError(f"team {self.team!r} has no pipeline {template!r}; it has: {', '.join(self.pipelines)}")
        return self.pipelines[template]

    @property
    def raw_bucket(self) -> str:
        """The raw zone's bucket."""
        return self.platform.buckets["raw"]

    @property
    def incoming_prefix(self) -> str:
        """``<team>/incoming/``: where raw batches land."""
        return naming.incoming_prefix(self.team)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _key_aliases(aws: EmbeddedAws) -> dict[str, str]:
    """Alias name -> target key id of every KMS alias that has a target."""
    found = {}
    for page in aws.client("kms").get_paginator("list_aliases").paginate():
        for entry in page["Aliases"]:
            if entry.get("TargetKeyId"):
                found[str(entry["AliasName"])] = str(entry["TargetKeyId"])
    return found


def _ensure_key(aws: EmbeddedAws, purpose: str, aliases: Mapping[str, str] | None = None) -> str:
    """The ARN of the key of ``purpose`` (alias ``alias/flywheel-local-<purpose>``), created if missing;
    ``aliases``: what :func:`_key_aliases` returned (listed here when not given)."""
    kms = aws.client("kms")
    alias = NAMES.key_alias(purpose)
    target = (_key_aliases(aws) if aliases is None else aliases).get(alias)
    if target:
        return str(kms.describe_key(KeyId=target)["KeyMetadata"]["Arn"])
    meta = kms.create_key(Description=f"Flywheel local: {purpose}", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    kms.enable_key_rotation(KeyId=meta["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return str(meta["Arn"])


def _ensure_bucket(aws: EmbeddedAws, name: str, key_arn: str) -> None:
    s3 = aws.client("s3")
    try:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": aws.region})
    except ClientError as exc:
        if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def provision_platform(aws: EmbeddedAws) -> PlatformResources:
    """Create (or find) the zone keys and buckets and the jobs' KMS key."""
    aliases = _key_aliases(aws)  # one listing for the seven keys
    keys = {zone: _ensure_key(aws, zone, aliases) for zone in ZONES}
    buckets = {zone: NAMES.bucket(zone) for zone in ZONES}
    for zone in ZONES:
        _ensure_bucket(aws, buckets[zone], keys[zone])
    ml_key = _ensure_key(aws, ML_KEY_PURPOSE, aliases)
    return PlatformResources(buckets=buckets, keys=keys, ml_key_arn=ml_key)


def object_exists(aws: EmbeddedAws, bucket: str, key: str) -> bool:
    """Whether ``s3://bucket/key`` exists."""
    try:
        aws.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def put_object(aws: EmbeddedAws, bucket: str, key: str, body: bytes, key_arn: str) -> dict[str, Any]:
    """Upload ``body`` with SSE-KMS under ``key_arn``; returns the PutObject response."""
    return dict(
        aws.client("s3").put_object(
            Bucket=bucket, Key=key, Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn
        )
    )


def _ensure_role(aws: EmbeddedAws, team: str) -> str:
    iam = aws.client("iam")
    name = NAMES.execution_role(team)
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError as exc:
        if _error_code(exc) != "NoSuchEntity":
            raise
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(_SAGEMAKER_TRUST),
        Description=f"SageMaker execution role of the pipelines of team {team} (local)",
    )
    return str(role["Role"]["Arn"])


def _ensure_group(aws: EmbeddedAws, team: TeamConfig) -> None:
    sm = aws.client("sagemaker")
    name = NAMES.model_package_group(team.name)
    try:
        sm.describe_model_package_group(ModelPackageGroupName=name)
        return
    except ClientError as exc:
        if _error_code(exc) not in ("ValidationException", "ResourceNotFound"):
            raise
    # moto's create overwrites an existing group, hence the describe first.
    sm.create_model_package_group(
        ModelPackageGroupName=name, ModelPackageGroupDescription=(team.description or team.name)[:1024]
    )


def deployment_values(
    template: PipelineTemplate,
    team: str,
    platform: PlatformResources,
    *,
    role_arn: str,
    source_uri: str,
    file_uris: Mapping[str, str],
    source_sha256: str,
    region: str = REGION,
) -> DeploymentValues:
    """The account-specific values of ``team``'s pipeline of ``template``, as ``stacks.components.ml_pipeline``
    fills them (local names instead of CDK tokens). Locally every step kind runs as the team's one local
    role (the embedded AWS enforces no IAM), and the build may expose local-only override parameters
    (``local_overrides``: e.g. ``tabular``'s ``GateThreshold``, labelled in the run report)."""
    return DeploymentValues(
        pipeline_name=NAMES.pipeline(team, template.name),
        region=region,
        role_arn=role_arn,
        role_arns={kind: role_arn for kind in template.access.role_kinds},
        source_sha256=source_sha256,
        local_overrides=True,
        kms_key_arn=platform.ml_key_arn,
        subnet_ids=LOCAL_SUBNETS,
        security_group_ids=LOCAL_SECURITY_GROUPS,
        buckets={zone: platform.buckets[zone] for zone in ZONES},
        source_uri=source_uri,
        model_package_group_name=NAMES.model_package_group(team),
        file_uris=dict(file_uris),
    )


def _upload_once(aws: EmbeddedAws, platform: PlatformResources, key: str, body: bytes) -> str:
    bucket, key_arn = platform.buckets["artifacts"], platform.keys["artifacts"]
    if not object_exists(aws, bucket, key):
        put_object(aws, bucket, key, body, key_arn)
    return naming.s3_uri(bucket, key)


def _upload_code(
    aws: EmbeddedAws, platform: PlatformResources, team: str, template: PipelineTemplate, settings: Any
) -> tuple[str, dict[str, str], str]:
    """Upload the template's step code and the team's files (content-addressed, like CDK assets); returns
    the code's URI, :attr:`~pipelines.template.TeamFile.key` -> file URI and the code's sha256."""
    from pipelines.packaging import SOURCEDIR_NAME

    code = template.sourcedir_bytes()
    sha256 = hashlib.sha256(code).hexdigest()
    code_dir = naming.code_prefix()
    source_uri = _upload_once(aws, platform, f"{code_dir}{template.name}/{sha256[:16]}/{SOURCEDIR_NAME}", code)
    file_uris = {}
    for item in template.team_files(settings):
        digest = hashlib.sha256(item.content).hexdigest()[:16]
        file_uris[item.key] = _upload_once(aws, platform, f"{code_dir}{team}/{digest}/{item.file_name}", item.content)
    return source_uri, file_uris, sha256


def new_pii_key() -> bytes:
    """A fresh random PII HMAC key (64 hex characters)."""
    return secrets.token_hex(32).encode()


def _ensure_pii_key(aws: EmbeddedAws, platform: PlatformResources, team: str, pii_key: bytes | None) -> str:
    bucket, key = platform.buckets["raw"], naming.pii_key_object(team)
    if not object_exists(aws, bucket, key):
        # The caller's key (kept by the runtime so tokens stay stable across runs) or a random one.
        put_object(aws, bucket, key, pii_key or new_pii_key(), platform.keys["raw"])
    return naming.s3_uri(bucket, key)


def _ensure_pipeline(aws: EmbeddedAws, name: str, definition: str, role_arn: str, description: str) -> str:
    sm = aws.client("sagemaker")
    try:
        current = sm.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if _error_code(exc) not in ("ValidationException", "ResourceNotFound"):
            raise
        created = sm.create_pipeline(
            PipelineName=name,
            PipelineDisplayName=name,
            PipelineDescription=description,
            PipelineDefinition=definition,
            RoleArn=role_arn,
            ClientRequestToken=hashlib.sha256(definition.encode()).hexdigest()[:64],
        )
        return str(created["PipelineArn"])
    if current.get("PipelineDefinition") != definition:
        sm.update_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=role_arn)
    return str(current["PipelineArn"])


#: Where the local runtime keeps raw SDK builds of pipeline definitions (:func:`cached_definition`).
DEFINITION_CACHE_ENV: Final = "FLYWHEEL_DEFINITION_CACHE"


def definition_cache_dir() -> Path:
    """``$FLYWHEEL_DEFINITION_CACHE``, else ``.flywheel/build/definitions`` of the repository."""
    default = Path(__file__).resolve().parents[1] / ".flywheel" / "build" / "definitions"
    return Path(os.environ.get(DEFINITION_CACHE_ENV) or default)


def cached_definition(template: PipelineTemplate, inputs: Any) -> str:
    """``template.build_definition(inputs)`` with the SDK's output reused from the build cache
    (:func:`pipelines.sdk_offline.build_cache`) when the same code, SDK and inputs built it before.

    Building imports the SageMaker SDK (seconds of CPU): synth-time work that ``flywheel up``, ``run`` and
    ``demo`` would otherwise redo on every start although the definition only changes with the code or
    the config.
    """
    from pipelines.sdk_offline import build_cache

    with build_cache(definition_cache_dir()):
        return template.build_definition(inputs)


def provision_pipeline(
    aws: EmbeddedAws,
    team: TeamConfig,
    template: PipelineTemplate,
    platform: PlatformResources,
    *,
    role_arn: str,
) -> PipelineResources:
    """Create (or update) ``team``'s pipeline of ``template`` through the template contract: code and
    team files uploaded, definition built from :class:`~pipelines.template.DeploymentValues`."""
    settings = team.template_settings(template.name)
    source_uri, file_uris, sha256 = _upload_code(aws, platform, team.name, template, settings)
    values = deployment_values(
        template,
        team.name,
        platform,
        role_arn=role_arn,
        source_uri=source_uri,
        file_uris=file_uris,
        source_sha256=sha256,
        region=aws.region,
    )
    inputs = template.definition_inputs(team.name, settings, values)
    definition = cached_definition(template, inputs)
    arn = _ensure_pipeline(
        aws, values.pipeline_name, definition, role_arn, template.describe(team.name, settings)[:3072]
    )
    return PipelineResources(
        template=template,
        pipeline_name=values.pipeline_name,
        pipeline_arn=arn,
        role_arn=role_arn,
        source_uri=source_uri,
        file_uris=file_uris,
        definition=definition,
        inputs=inputs,
    )


def provision_team(
    aws: EmbeddedAws,
    team: TeamConfig,
    platform: PlatformResources | None = None,
    *,
    pii_key: bytes | None = None,
    pipelines: bool = True,
) -> TeamResources:
    """Create (or update) everything ``team``'s runtime needs, one pipeline per template; safe to call again.

    ``pii_key`` is uploaded as the team's PII HMAC key if none exists yet (default: a random key).
    ``pipelines=False`` leaves the pipelines to the first use of :attr:`TeamResources.pipelines`.
    """
    platform = platform or provision_platform(aws)
    role_arn = _ensure_role(aws, team.name)
    pii_key_uri = _ensure_pii_key(aws, platform, team.name, pii_key)
    _ensure_group(aws, team)
    resources = TeamResources(
        team=team.name,
        group_name=NAMES.model_package_group(team.name),
        role_arn=role_arn,
        pii_key_uri=pii_key_uri,
        platform=platform,
        provision_pipelines=lambda: {
            name: provision_pipeline(aws, team, template, platform, role_arn=role_arn)
            for name, template in team.templates().items()
        },
    )
    if pipelines:
        resources.pipelines  # noqa: B018 - created now
    return resources


@contextlib.contextmanager
def in_process(region: str = REGION) -> Iterator[EmbeddedAws]:
    """``with in_process() as aws:`` — an in-process embedded AWS for the block."""
    aws = EmbeddedAws.in_process(region)
    try:
        yield aws
    finally:
        aws.close()
