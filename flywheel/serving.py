"""Local model serving that honours the SageMaker inference container contract.

A model package's ``model.tar.gz`` is unpacked into a temporary folder (as SageMaker unpacks it into
``/opt/ml/model``) and served with the inference code *inside the artifact* (``code/inference.py`` and
its sibling modules, as ``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code`` would): ``model_fn`` once,
then ``input_fn`` → ``predict_fn`` → ``output_fn`` per request. The HTTP surface is the container's:

- ``GET /ping``: 200 (empty body) while the model is loaded.
- ``POST /invocations``: body in ``text/csv`` or ``application/json``; ``Accept`` picks the response
  type (JSON by default).

Errors are JSON ``{"status", "error", "message"}`` and never carry a stack trace: ``input_fn``/
``predict_fn`` ``ValueError`` → 400 with its message, unsupported ``Content-Type`` → 415, unsupported
``Accept`` → 406, body over ``max_payload_bytes`` (6 MB, SageMaker's limit) → 413, unknown path → 404,
wrong method → 405, anything else → 500 with a generic message (the trace goes to the
``flywheel.serving`` log).
Bounded under load: the listen backlog holds :data:`REQUEST_QUEUE_SIZE` connections; at most
``max_concurrency`` invocations (default :data:`MAX_CONCURRENT_INVOCATIONS`) read their body and run the
model at a time, the others wait up to ``queue_timeout`` seconds for a slot and are then answered 503
(JSON, ``Retry-After``), so memory stays within a few payloads however many clients send at once; bodies
are read in 64 KB chunks up to ``max_payload_bytes``. Every refused request is answered in JSON, never an
HTML page (``send_error`` is overridden, for malformed request lines and headers too): a body that is not
UTF-8 → 400, JSON nested deeper than :data:`MAX_JSON_DEPTH` → 400, a CSV field over the ``csv`` module's
limit → 400. A non-loopback ``host`` is refused unless ``allow_remote`` (``flywheel serve --allow-remote``).
Successful invocations (only: a refused request has no prediction to monitor) are captured in
SageMaker's data-capture format (:mod:`flywheel.capture`); the record's ``eventId`` is the response's
``X-Amzn-RequestId``, and a caller's ``X-Amzn-SageMaker-Inference-Id`` is kept as ``inferenceId``.
Each request runs on its own thread; the model must be safe to call concurrently (XGBoost's predict is).

Typical use::

    model = load_model(Path("model.tar.gz"))
    body, ctype = model.invoke(b"30-39,941,2024,...", "text/csv")    # in-process
    with serve(model, capture=LocalCaptureSink("capture"), endpoint_name="churn-staging") as server:
        response = invoke(server.url, b"30-39,941,2024,...", "text/csv")
"""

from __future__ import annotations

import contextlib
import csv
import errno
import http.client
import importlib
import io
import ipaddress
import json
import logging
import os
import random
import re
import shutil
import socket
import socketserver
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from flywheel.capture import CaptureSink, capture_record, check_name
from flywheel.errors import ModelLoadError, PortInUseError, RemoteBindError

LOG = logging.getLogger("flywheel.serving")
JSON = "application/json"
CSV = "text/csv"
#: SageMaker real-time endpoints refuse request payloads above 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Oversized bodies up to this size are read and dropped so the client gets its 413 (beyond: connection closed).
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
DEFAULT_TYPES = (CSV, JSON)
#: Connections the kernel queues before ``accept`` (socketserver's default of 5 resets bursts of clients).
REQUEST_QUEUE_SIZE = 256
#: Invocations that run (read a body, call the model) at once; the rest wait for a slot.
MAX_CONCURRENT_INVOCATIONS = max(4, os.cpu_count() or 1)
#: How long a request waits for an invocation slot before it is answered 503.
QUEUE_TIMEOUT_S = 30.0
#: Deepest JSON nesting a request may have (rows of instances need 3; recursion must never be reached).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
#: The first accept type answers ``*/*`` or a missing ``Accept`` (JSON, like the template's ``negotiate``).
DEFAULT_ACCEPT_TYPES = (JSON, CSV)
#: Serialises imports of artifact code: sibling modules are briefly visible under their plain names.
_IMPORT_LOCK = threading.Lock()


class InvocationError(Exception):
    """A request the model refuses, with the HTTP status a server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


# --- loading -----------------------------------------------------------------------------------------


def _unpack(source: Path | bytes, what: str) -> Path:
    """Extract a (gzipped) tar into a new temporary folder; ModelLoadError if it is not a safe tar."""
    dest = Path(tempfile.mkdtemp(prefix="flywheel-model-"))
    try:
        fileobj = io.BytesIO(source) if isinstance(source, bytes) else None
        name = None if isinstance(source, bytes) else source
        with tarfile.open(name, mode="r:*", fileobj=fileobj) as tar:
            # The "data" filter refuses absolute paths, "..", links out of dest and device files.
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ModelLoadError(f"{what} has an unsafe member: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ModelLoadError(f"{what} is not a readable tar archive: {exc}") from exc
    return dest


def _import_isolated(code_dir: Path, entry: str) -> tuple[ModuleType, dict[str, ModuleType]]:
    """Import ``entry`` from ``code_dir`` without leaving its modules in ``sys.modules``.

    The artifact's modules import their siblings by plain name (``from contract import ...``), as in
    the container where the code folder is on ``sys.path``. For the duration of the import, the code
    folder goes first on ``sys.path`` and any modules already registered under those names (another
    model's, or the step code's) are set aside; afterwards everything is put back. Names bound at
    import time keep pointing at this artifact's modules, so two models never share code. (Limitation:
    a sibling imported lazily inside a function at request time would not resolve; the template's code
    imports at module level.)
    """
    names = {p.stem for p in code_dir.glob("*.py")}
    names |= {p.name for p in code_dir.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    if entry not in names:
        raise ModelLoadError(f"no {entry}.py in the model's code folder {code_dir}")
    # Swapping a standard-library module out of sys.modules, even briefly, would break this process.
    shadowing = sorted(names & sys.stdlib_module_names)
    if shadowing:
        raise ModelLoadError(f"model code shadows standard-library module(s): {', '.join(shadowing)}; rename them")

    def ours(name: str) -> bool:
        return name.partition(".")[0] in names

    path = str(code_dir)
    with _IMPORT_LOCK:
        saved = {n: m for n, m in sys.modules.items() if ours(n)}
        for n in saved:
            del sys.modules[n]
        sys.path.insert(0, path)
        dont_write = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # never add __pycache__ to a model folder
        try:
            module = importlib.import_module(entry)
        finally:
            loaded = {n: sys.modules.pop(n) for n in list(sys.modules) if ours(n)}
            sys.dont_write_bytecode = dont_write
            if path in sys.path:
                sys.path.remove(path)
            sys.path_importer_cache.pop(path, None)
            sys.modules.update(saved)
    return module, loaded


class LoadedModel:
    """A model artifact loaded with its own inference code; thread-safe to invoke.

    Attributes: ``model_dir`` (the unpacked artifact), ``module`` (its ``inference`` module),
    ``model`` (what ``model_fn`` returned), ``content_types``/``accept_types`` (media types served;
    the module may declare ``CONTENT_TYPES``/``ACCEPT_TYPES``, else CSV and JSON).
    """

    def __init__(
        self, model_dir: Path, module: ModuleType, modules: dict[str, ModuleType], scratch: Path | None
    ) -> None:
        self.model_dir = model_dir
        self.module = module
        self.modules = modules
        self._scratch = scratch
        for fn in ("model_fn", "input_fn", "predict_fn", "output_fn"):
            if not callable(getattr(module, fn, None)):
                raise ModelLoadError(f"{module.__file__} does not define {fn}()")
        self.content_types = tuple(getattr(module, "CONTENT_TYPES", DEFAULT_TYPES))
        self.accept_types: tuple[str, ...] = tuple(getattr(module, "ACCEPT_TYPES", DEFAULT_ACCEPT_TYPES))
        try:
            self.model = module.model_fn(str(model_dir))
        except Exception as exc:
            raise ModelLoadError(f"model_fn failed for {model_dir}: {exc}") from exc
        self.closed = False

    def negotiate(self, accept: str | None) -> str:
        """The response media type for an ``Accept`` header; :class:`InvocationError` 406 if none fits."""
        for part in (accept or "").split(","):
            media = _media_type(part)
            if media in ("", "*/*", "application/*"):
                return self.accept_types[0]
            if media in self.accept_types:
                return media
        raise InvocationError(406, f"unsupported Accept {accept!r}: use {' or '.join(self.accept_types)}")

    def predict(self, data: Any) -> Any:
        """``predict_fn`` on already-parsed input (what ``input_fn`` returns): no parsing, no output."""
        return self.module.predict_fn(data, self.model)

    def invoke(self, body: bytes, content_type: str = CSV, accept: str | None = JSON) -> tuple[bytes, str]:
        """Run one request through ``input_fn``/``predict_fn``/``output_fn``; returns (body, content type).

        Raises :class:`InvocationError` for a request the model refuses (415, 406, 400); any other
        exception is a fault of the model or this code.
        """
        if self.closed:
            raise InvocationError(503, "model is not loaded")
        if _media_type(content_type) not in self.content_types:
            raise InvocationError(
                415, f"unsupported Content-Type {content_type!r}: use {' or '.join(self.content_types)}"
            )
        media = self.negotiate(accept)
        try:
            data = self.module.input_fn(body, content_type)
            prediction = self.module.predict_fn(data, self.model)
        except ValueError as exc:  # the serving contract: bad input is a ValueError with a clear message
            raise InvocationError(400, str(exc) or type(exc).__name__) from exc
        out = self.module.output_fn(prediction, media)
        if isinstance(out, tuple):  # output_fn may return (body, content_type), as in the SageMaker toolkit
            out, media = out
        return (out.encode("utf-8") if isinstance(out, str) else bytes(out)), media

    def close(self) -> None:
        """Forget the model and delete the unpacked artifact (if this object unpacked it)."""
        self.closed = True
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def load_model(
    artifact: str | Path | bytes, *, code_dir: str | Path | None = None, entry_point: str = "inference.py"
) -> LoadedModel:
    """Load a model artifact: a ``model.tar.gz`` path, its bytes (e.g. fetched from S3), or an unpacked folder.

    The inference code is ``<model>/code/<entry_point>`` unless ``code_dir`` points elsewhere (as a
    separate ``SAGEMAKER_SUBMIT_DIRECTORY`` would). Raises :class:`ModelLoadError` with the reason.
    """
    scratch: Path | None = None
    try:
        if isinstance(artifact, bytes | bytearray):
            scratch = model_dir = _unpack(bytes(artifact), "model artifact (bytes)")
        else:
            path = Path(artifact)
            if path.is_dir():
                model_dir = path
            elif path.is_file():
                scratch = model_dir = _unpack(path, str(path))
            else:
                raise ModelLoadError(f"model artifact {path} does not exist")
        code = Path(code_dir) if code_dir is not None else model_dir / "code"
        if code_dir is None and not code.is_dir() and (model_dir / "xgboost-model").is_file():
            # SageMaker's built-in XGBoost: the container's own inference contract, not code in the artifact.
            from flywheel.executor.algorithms import xgboost_container

            code, entry_point = xgboost_container.PATH.parent, xgboost_container.PATH.name
        if not code.is_dir():
            raise ModelLoadError(f"model artifact has no code/ folder with {entry_point} (looked in {code})")
        if (code / "requirements.txt").is_file():
            LOG.info("%s/requirements.txt ignored: the local environment provides the libraries", code)
        try:
            module, modules = _import_isolated(code, Path(entry_point).stem)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"importing {code / entry_point} failed: {exc}") from exc
        return LoadedModel(model_dir, module, modules, scratch)
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise


# --- routing -----------------------------------------------------------------------------------------


@dataclass
class Target:
    """One loaded model the endpoint can route a request to (the package version it serves, if known)."""

    model: LoadedModel
    version: Any = None
    package_arn: str | None = None


class Router:
    """Which model answers each request: one model here; :class:`flywheel.rollout.CanaryRouter` sends
    a canary share to a new version during a rollout. ``observe`` sees every answered invocation."""

    def __init__(self, champion: Target) -> None:
        self.champion = champion
        #: Models no longer routed to (closed with the router: requests in flight may still use them).
        self.retired: list[Target] = []
        self.lock = threading.Lock()

    @property
    def model(self) -> LoadedModel:
        """The model that takes all traffic (outside a rollout), for ``/ping``."""
        return self.champion.model

    def pick(self) -> Target:
        """The target of the next request."""
        return self.champion

    def observe(self, target: Target, status: int, model_ms: float | None) -> None:
        """One response of ``target``: its status and, when it succeeded, the model's time."""

    def targets(self) -> list[Target]:
        """Every target this router routes or routed to."""
        return [self.champion, *self.retired]

    def close(self) -> None:
        """Close every model this router served."""
        seen: set[int] = set()
        for target in self.targets():
            if id(target.model) not in seen:
                seen.add(id(target.model))
                target.model.close()


# --- HTTP server -------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending ``ordered`` values, interpolated between the closest ranks.

    ``percentile(v, 0.5)`` is the median; the same estimator as ``numpy.percentile``'s default.
    """
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class ServerStats:
    """Request counts by status and recent invocation latencies (for the report and the CLI)."""

    by_status: Counter[int] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: int) -> None:
        """Count one response."""
        with self.lock:
            self.by_status[status] += 1

    def latency(self, ms: float) -> None:
        """Record the model time of one successful invocation."""
        with self.lock:
            self.latencies_ms.append(ms)

    def summary(self) -> dict[str, Any]:
        """``{"requests", "by_status", "p50_ms", "p99_ms"}`` (latency keys None before any invocation)."""
        with self.lock:
            lat = sorted(self.latencies_ms)
            counts = dict(self.by_status)

        return {
            "requests": sum(counts.values()),
            "by_status": counts,
            "p50_ms": percentile(lat, 0.5) if lat else None,
            "p99_ms": percentile(lat, 0.99) if lat else None,
        }


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text (brackets inside strings ignored); no recursion."""
    if text.count("[") + text.count("{") <= 1:
        return min(1, text.count("[") + text.count("{"))
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_body(body: bytes, content_type: str) -> None:
    """Refuse, before the model sees it, a body no inference code should parse: not UTF-8 text, or JSON
    nested deeper than :data:`MAX_JSON_DEPTH` (:class:`InvocationError` 400)."""
    if body.isascii() and _media_type(content_type) != JSON:
        return  # ASCII is UTF-8 (one pass over a megabytes-long CSV body, without decoding it)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvocationError(
            400, f"request body is not UTF-8 text (byte {exc.start}): send {content_type or 'text/csv'} as UTF-8"
        ) from None
    if _media_type(content_type) == JSON and json_depth(text) > MAX_JSON_DEPTH:
        raise InvocationError(400, f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # stop() closes and joins connections itself; see RunningServer.stop
    request_queue_size = REQUEST_QUEUE_SIZE

    def __init__(
        self,
        address: tuple[str, int],
        router: Router,
        capture: CaptureSink | None,
        endpoint_name: str,
        variant: str,
        max_payload_bytes: int,
        sampling_percentage: float,
        max_concurrency: int = MAX_CONCURRENT_INVOCATIONS,
        queue_timeout: float = QUEUE_TIMEOUT_S,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.queue_timeout = queue_timeout
        self.router = router
        self.capture = capture
        self.endpoint_name = endpoint_name
        self.variant = variant
        self.max_payload_bytes = max_payload_bytes
        self.sampling_percentage = sampling_percentage
        self.stats = ServerStats()
        self.connections: dict[threading.Thread, socket.socket] = {}
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def model(self) -> LoadedModel:
        """The model taking all traffic (the champion during a rollout)."""
        return self.router.model

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS lookup that can hang offline); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like SageMaker's clients use
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per keep-alive request on Linux).
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "flywheel-serving"

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections[threading.current_thread()] = self.connection

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.pop(threading.current_thread(), None)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's HTML error page (malformed request line, headers, unsupported method) as JSON."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"  # an unparsable request line: still answer with a status line
        with contextlib.suppress(OSError):
            body = {"status": code, "error": _phrase(code), "message": message or explain or _phrase(code)}
            self._send(code, json.dumps(body).encode(), JSON)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s - " + format, self.address_string(), *args)

    # --- routing

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/ping":
            if self.server.model.closed:
                self._error(503, "model is not loaded")
            else:
                self._send(200, b"", "text/plain")
        elif path == "/invocations":
            self._error(405, "use POST /invocations", allow="POST")
        else:
            self._error(404, f"no such path {path!r}: the container serves GET /ping and POST /invocations")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/invocations":
            self._invocations()
        elif path == "/ping":
            self._error(405, "use GET /ping", allow="GET")
        else:
            self._error(404, f"no such path {path!r}: the container serves GET /ping and POST /invocations")

    # --- responses

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.server.stats.count(status)

    def _error(self, status: int, message: str, *, allow: str | None = None, drain: bool = True) -> None:
        # Keep-alive needs the request body consumed; when we cannot (or will not) read it, close.
        if drain and not self._drain():
            self.close_connection = True
        body = {"status": status, "error": _phrase(status), "message": message}
        headers = {"Allow": allow} if allow else None
        if status == 503:
            headers = {**(headers or {}), "Retry-After": "1"}
        self._send(status, json.dumps(body).encode(), JSON, headers)

    def _drain(self) -> bool:
        length = self.headers.get("Content-Length")
        if not length:
            return "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
        try:
            n = int(length)
        except ValueError:
            return False
        return self._discard(n)

    def _discard(self, n: int) -> bool:
        """Read and drop ``n`` body bytes in chunks; False if the body is too large to bother (or cut short)."""
        if n > max(DISCARD_LIMIT_BYTES, 4 * self.server.max_payload_bytes):
            return False
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 16))
            if not chunk:
                return False
            n -= len(chunk)
        return True

    # --- POST /invocations

    def _invocations(self) -> None:
        server = self.server
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._error(411, "send the body with a Content-Length (chunked transfer is not supported)", drain=False)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self._error(400, "invalid Content-Length header", drain=False)
            return
        if length > server.max_payload_bytes:
            # Read (and drop) the body before answering: closing a socket with unread data resets the
            # connection, and the client, still sending, would see a broken pipe instead of the 413.
            if not self._discard(length):
                self.close_connection = True
            self._error(
                413,
                f"payload of {length} bytes exceeds the limit of {server.max_payload_bytes} bytes; "
                "split the request or use batch transform",
                drain=False,
            )
            return
        # A slot first, then the body: only max_concurrency bodies are in memory at once.
        if not server.slots.acquire(timeout=server.queue_timeout):
            self._error(503, "the endpoint is saturated: retry shortly (Retry-After)")
            return
        try:
            self._invoke_with_slot(length)
        finally:
            server.slots.release()

    def _read_body(self, length: int) -> bytes | None:
        """Exactly ``length`` body bytes (at most ``max_payload_bytes``, checked before); None if the client
        went away.

        One ``read`` of the buffered file: it allocates the ``bytes`` once and reads into it until it is full.
        Reading into a ``bytearray`` and copying it cost a fresh allocation of the body twice, every page of
        it faulted in again (~3 ms of a 6 MB batch-transform request; 64 KiB reads appended were worse).
        """
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _invoke_with_slot(self, length: int) -> None:
        server = self.server
        body = self._read_body(length)
        if body is None:
            self.close_connection = True
            return  # the client went away mid-body
        inference_id = self.headers.get("X-Amzn-SageMaker-Inference-Id")
        if inference_id is not None and not (0 < len(inference_id) <= 64 and inference_id.isprintable()):
            self._error(400, "X-Amzn-SageMaker-Inference-Id must be 1-64 printable characters", drain=False)
            return
        content_type = self.headers.get("Content-Type") or ""
        event_id = str(uuid.uuid4())
        try:
            check_body(body, content_type)
        except InvocationError as exc:
            self._error(exc.status, exc.message, drain=False)
            return
        target = server.router.pick()
        start = time.perf_counter()
        try:
            out, out_type = target.model.invoke(body, content_type, self.headers.get("Accept"))
        except InvocationError as exc:
            self._error(exc.status, exc.message, drain=False)
            server.router.observe(target, exc.status, None)
            return
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): the request, not the model
            self._error(400, f"request body is not usable CSV: {exc}", drain=False)
            server.router.observe(target, 400, None)
            return
        except RecursionError:
            self._error(400, "request body is nested too deeply", drain=False)
            server.router.observe(target, 400, None)
            return
        except Exception:
            LOG.exception("invocation %s failed", event_id)
            self._error(500, f"internal error while invoking the model (request id {event_id})", drain=False)
            server.router.observe(target, 500, None)
            return
        ms = (time.perf_counter() - start) * 1000
        headers = {"X-Amzn-RequestId": event_id, "X-Amzn-Invoked-Production-Variant": server.variant}
        if target.version is not None:
            headers["X-Flywheel-Model-Version"] = str(target.version)
        self._send(200, out, out_type, headers)
        server.stats.latency(ms)
        server.router.observe(target, 200, ms)
        if server.capture is not None and random.random() * 100 < server.sampling_percentage:  # noqa: S311
            record = capture_record(
                request_body=body,
                request_content_type=content_type,
                response_body=out,
                response_content_type=out_type,
                event_id=event_id,
                inference_time=datetime.now(UTC),
                inference_id=inference_id,
            )
            try:
                server.capture.write(server.endpoint_name, server.variant, record, datetime.now(UTC))
            except Exception:  # capture must never fail a request that was already answered
                LOG.exception("capture of %s failed", event_id)


@dataclass
class RunningServer:
    """A server running in a background thread. ``stop()`` (or leaving the ``with`` block) ends it."""

    host: str
    port: int
    endpoint_name: str
    variant: str
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    #: Called first when the server stops (e.g. a rollout watcher); then an owned router is closed.
    on_stop: list[Callable[[], None]] = field(default_factory=list, repr=False)
    #: Called last, once the server is closed (e.g. closing models loaded after it started).
    on_closed: list[Callable[[], None]] = field(default_factory=list, repr=False)
    owns_router: bool = field(default=False, repr=False)

    @property
    def router(self) -> Router:
        """Which model answers each request (see :class:`Router`)."""
        return self._server.router

    def set_router(self, router: Router) -> None:
        """Route the next requests with ``router`` (requests in flight finish on the previous one)."""
        self._server.router = router

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080`` (append ``/ping`` or ``/invocations``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """Request counts and invocation latency percentiles so far (see :class:`ServerStats`)."""
        return self._server.stats.summary()

    def stop(self, *, close_capture: bool = True, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish, close idle connections, flush capture."""
        server = self._server
        for hook in self.on_stop:
            hook()
        server.shutdown()
        with server.connections_lock:
            open_conns = list(server.connections.items())
        for _, conn in open_conns:
            with contextlib.suppress(OSError):  # ends idle keep-alive reads; responses still go out
                conn.shutdown(socket.SHUT_RD)
        deadline = time.monotonic() + timeout
        for thread, _ in open_conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        server.server_close()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if server.capture is not None:
            if close_capture:
                server.capture.close()
            else:
                server.capture.flush()
        if self.owns_router:
            server.router.close()
        for hook in self.on_closed:
            hook()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    model: LoadedModel | Router,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    capture: CaptureSink | None = None,
    endpoint_name: str = "local-endpoint",
    variant: str = "AllTraffic",
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    sampling_percentage: float = 100.0,
    max_concurrency: int = MAX_CONCURRENT_INVOCATIONS,
    queue_timeout: float = QUEUE_TIMEOUT_S,
    allow_remote: bool = False,
) -> RunningServer:
    """Serve ``model`` on ``host:port`` (0 = a free port) in a background thread.

    ``model`` is one loaded model, or a :class:`Router` (e.g. a canary rollout), which the server then
    owns: ``stop()`` closes its models.

    Successful invocations are written to ``capture`` (a sampled ``sampling_percentage`` of them, as
    SageMaker's ``InitialSamplingPercentage``) under ``endpoint_name``/``variant``. ``stop()`` closes
    the sink unless told otherwise. Raises :class:`PortInUseError` naming the port if it is taken.
    """
    check_name("endpoint name", endpoint_name)
    check_name("variant name", variant)
    if not 0 <= sampling_percentage <= 100:
        raise ValueError(f"sampling_percentage must be within 0..100, got {sampling_percentage}")
    if not _is_loopback(host):
        if not allow_remote:
            raise RemoteBindError(
                f"refusing to serve on {host}: it is reachable from other machines and the endpoint has no "
                "authentication; keep 127.0.0.1, or pass --allow-remote (allow_remote=True) if you mean it"
            )
        LOG.warning("serving on %s: reachable from other machines, and there is no authentication", host)
    try:
        server = _Server(
            (host, port),
            model if isinstance(model, Router) else Router(Target(model)),
            capture,
            endpoint_name,
            variant,
            max_payload_bytes,
            sampling_percentage,
            max_concurrency,
            queue_timeout,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(port, f"endpoint {endpoint_name}", host) from exc
        raise OSError(exc.errno, f"cannot serve on {host}:{port}: {exc.strerror}") from exc
    actual_port = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"serve-{endpoint_name}", daemon=True
    )
    thread.start()
    LOG.info("serving %s/%s on http://%s:%d", endpoint_name, variant, host, actual_port)
    return RunningServer(
        host, actual_port, endpoint_name, variant, server, thread, owns_router=isinstance(model, Router)
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- client ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """An HTTP response from a serving endpoint."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


# A direct opener: proxies from the environment must never see a localhost invocation.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, *, timeout: float = 30.0
) -> Response:
    """Send one HTTP request; non-2xx statuses are returned, not raised."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - checked
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read(), resp.headers.get("Content-Type", ""), dict(resp.headers))
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, err.read(), err.headers.get("Content-Type", ""), dict(err.headers))


def invoke(
    url: str, body: bytes | str, content_type: str = CSV, accept: str = JSON, *, timeout: float = 30.0
) -> Response:
    """``POST <url>/invocations`` (``url`` is the server's base URL, e.g. :attr:`RunningServer.url`)."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    headers = {"Content-Type": content_type, "Accept": accept}
    return request("POST", url.rstrip("/") + "/invocations", data, headers, timeout=timeout)


def ping(url: str, *, timeout: float = 5.0) -> bool:
    """True when ``GET <url>/ping`` answers 200."""
    try:
        return request("GET", url.rstrip("/") + "/ping", timeout=timeout).status == 200
    except OSError:
        return False


# --- the one latency measurement (demo and benchmark) -------------------------------------------------

#: Requests sent (and not timed) before measuring: the first ones pay for imports, caches and the connection.
MEASURE_WARMUP = 20


class KeepAliveClient:
    """POST ``/invocations`` over one persistent HTTP/1.1 connection, as SageMaker's runtime clients do.

    The connection is re-opened once if the server closed it (idle timeout, restart); any other error
    is raised.
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http URL: {url!r}")
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)

    def invoke(self, body: bytes, content_type: str = CSV, accept: str = JSON) -> Response:
        """One request; non-2xx statuses are returned, not raised."""
        headers = {"Content-Type": content_type, "Accept": accept}
        for attempt in (1, 2):
            try:
                self._conn.request("POST", "/invocations", body, headers)
                resp = self._conn.getresponse()
                data = resp.read()
                return Response(resp.status, data, resp.getheader("Content-Type", ""), dict(resp.getheaders()))
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_endpoint(
    url: str,
    singles: Sequence[bytes],
    batch: bytes | Sequence[bytes],
    *,
    batch_rows: int,
    requests: int,
    batches: int | None = None,
    warmup: int = MEASURE_WARMUP,
    content_type: str = CSV,
) -> dict[str, Any]:
    """Single-row latency (p50/p99 over ``requests``) and batch throughput of a running endpoint.

    One keep-alive connection (:class:`KeepAliveClient`), ``warmup`` untimed requests first; each
    latency is one request's round trip as the client sees it. ``flywheel demo`` and
    ``bench/bench_serving.py`` both report this, so their figures measure the same thing.
    """
    if not singles:
        raise ValueError("no single-row request bodies to send")
    # One batch body, or several sent in turn (the demo sends different rows so that its capture, which the
    # drift monitor reads, is a sample of the test split rather than one batch repeated).
    bodies = [batch] if isinstance(batch, bytes) else list(batch)
    if not bodies:
        raise ValueError("no batch request bodies to send")
    batches = requests if batches is None else batches
    latencies: list[float] = []
    errors = 0
    with KeepAliveClient(url) as client:
        for i in range(warmup):
            client.invoke(singles[i % len(singles)], content_type)
        client.invoke(bodies[0], content_type)
        for i in range(requests):
            started = time.perf_counter()
            response = client.invoke(singles[i % len(singles)], content_type)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += 0 if response.ok else 1
        started = time.perf_counter()
        for i in range(batches):
            errors += 0 if client.invoke(bodies[i % len(bodies)], content_type).ok else 1
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "client": "http keep-alive",
        "requests": requests,
        "batches": batches,
        "batch_rows": batch_rows,
        "warmup": warmup,
        "errors": errors,
        "p50_ms": percentile(ordered, 0.5),
        "p99_ms": percentile(ordered, 0.99),
        "mean_ms": sum(ordered) / len(ordered),
        "rows_per_s": batches * batch_rows / elapsed if elapsed else 0.0,
        "batch_ms": elapsed / batches * 1000 if batches else 0.0,
    }
