"""Inference data capture in SageMaker's format, written to a local folder or to S3.

Each captured invocation is one JSON line, as SageMaker endpoint data capture writes it::

    {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-01-01T12:00:00Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` (``data`` is the body as text) for those media types, otherwise
``BASE64``. Lines are batched (by count and age) into objects laid out like SageMaker's::

    <prefix>/<endpoint-name>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl      (hour of the inference, UTC)

so the drift monitor reads local and S3 captures the same way (:func:`iter_capture_lines`,
:func:`decode_data`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LOG = logging.getLogger("flywheel.capture")
#: SageMaker's endpoint and variant name pattern; also keeps names safe as path components.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_TEXT_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON", "application/jsonlines": "JSON"}


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid SageMaker endpoint/variant name, else ValueError naming ``kind``."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{kind} {name!r} is not a valid SageMaker name (letters, digits, hyphens; max 63)")
    return name


def _section(body: bytes, content_type: str, mode: str) -> dict[str, str]:
    media = content_type.split(";")[0].strip().lower()
    encoding = _TEXT_ENCODINGS.get(media, "BASE64")
    data: str | None = None
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:  # a CSV that is not UTF-8 is still captured, as bytes
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_record(
    *,
    request_body: bytes,
    request_content_type: str,
    response_body: bytes,
    response_content_type: str,
    event_id: str,
    inference_time: datetime,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """One data-capture record (see the module docstring); ``inference_time`` is stored in UTC."""
    metadata: dict[str, str] = {
        "eventId": event_id,
        "inferenceTime": inference_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if inference_id:  # SageMaker records the caller's X-Amzn-SageMaker-Inference-Id here
        metadata["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": _section(request_body, request_content_type, "INPUT"),
            "endpointOutput": _section(response_body, response_content_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


def decode_data(section: dict[str, Any]) -> bytes:
    """The original body bytes of an ``endpointInput``/``endpointOutput`` section."""
    if section["encoding"] == "BASE64":
        return base64.b64decode(section["data"])
    return str(section["data"]).encode("utf-8")


def iter_capture_lines(text: str) -> Iterator[dict[str, Any]]:
    """Parse a ``.jsonl`` capture file's content into records (blank lines skipped)."""
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


def capture_key(prefix: str, endpoint_name: str, variant: str, at: datetime, name: str) -> str:
    """``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>`` (UTC hour; no leading slash)."""
    hour = at.astimezone(UTC).strftime("%Y/%m/%d/%H")
    return "/".join(p for p in (prefix.strip("/"), endpoint_name, variant, hour, name) if p)


class CaptureSink(ABC):
    """Where captured records go. Thread-safe; use as a context manager or call :meth:`close`."""

    @abstractmethod
    def write(self, endpoint_name: str, variant: str, record: dict[str, Any], at: datetime) -> None:
        """Accept one record captured at ``at`` (may be buffered)."""

    def flush(self) -> None:  # noqa: B027 - unbuffered sinks have nothing to flush
        """Persist everything accepted so far."""

    def close(self) -> None:
        """Flush and release resources; no writes afterwards."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BatchingCaptureSink(CaptureSink):
    """Buffers records and writes them as objects of at most ``max_records`` lines per (endpoint, variant, hour).

    A batch is written when ``max_records`` are buffered or ``max_seconds`` after the previous flush,
    by a background thread, so that a request never waits on storage; :meth:`flush` and :meth:`close`
    write synchronously. A failed write is logged and retried at the next flush; beyond ``max_buffered``
    records new ones are dropped (counted in :attr:`dropped`) rather than growing without bound.
    """

    def __init__(self, *, max_records: int = 1000, max_seconds: float = 60.0, max_buffered: int = 100_000) -> None:
        if max_records < 1 or max_seconds <= 0 or max_buffered < max_records:
            raise ValueError("need max_records >= 1, max_seconds > 0 and max_buffered >= max_records")
        self.max_records = max_records
        self.max_seconds = max_seconds
        self.max_buffered = max_buffered
        self.dropped = 0
        self.objects_written = 0
        self._buffers: dict[tuple[str, str, str], list[str]] = {}
        self._times: dict[tuple[str, str, str], datetime] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer at a time keeps batches in order
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _put(self, endpoint_name: str, variant: str, at: datetime, payload: bytes) -> None:
        """Store one batch (JSON lines) for the hour of ``at``."""

    def write(self, endpoint_name: str, variant: str, record: dict[str, Any], at: datetime) -> None:
        """Buffer one record; wakes the flusher when a batch is full."""
        check_name("endpoint name", endpoint_name)
        check_name("variant name", variant)
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        at = at.astimezone(UTC)
        key = (endpoint_name, variant, at.strftime("%Y%m%d%H"))
        with self._lock:
            if self._closed:
                raise RuntimeError("capture sink is closed")
            if self._count >= self.max_buffered:
                self.dropped += 1
                return
            self._buffers.setdefault(key, []).append(line)
            self._times.setdefault(key, at)
            self._count += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}-flusher", daemon=True)
                self._thread.start()
            if self._count >= self.max_records:
                self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(timeout=self.max_seconds)
            self._wake.clear()
            if not self._closed:
                self.flush()

    def flush(self) -> None:
        """Write every buffered batch now; failed batches stay buffered for the next attempt."""
        with self._flush_lock:
            with self._lock:
                batches, times = self._buffers, self._times
                self._buffers, self._times, self._count = {}, {}, 0
            for key, lines in batches.items():
                endpoint_name, variant, _ = key
                for start in range(0, len(lines), self.max_records):  # at most max_records per object
                    chunk = lines[start : start + self.max_records]
                    try:
                        self._put(endpoint_name, variant, times[key], ("\n".join(chunk) + "\n").encode("utf-8"))
                        self.objects_written += 1
                    except Exception:
                        LOG.exception("capture: writing %d record(s) for %s/%s failed", len(chunk), *key[:2])
                        self._requeue(key, lines[start:], times[key])
                        break

    def _requeue(self, key: tuple[str, str, str], lines: list[str], at: datetime) -> None:
        with self._lock:
            room = max(0, self.max_buffered - self._count)
            kept = lines[:room]
            self.dropped += len(lines) - len(kept)
            if kept:
                self._buffers[key] = kept + self._buffers.get(key, [])
                self._times[key] = min(at, self._times.get(key, at))
                self._count += len(kept)

    def close(self) -> None:
        """Stop the flusher and write what is left (logs an error for records that could not be written)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
        self.flush()
        if self._count:
            LOG.error("capture: %d record(s) could not be written before close", self._count)
        if self.dropped:
            LOG.error("capture: %d record(s) dropped (buffer full)", self.dropped)

    @property
    def buffered(self) -> int:
        """Records accepted but not written yet."""
        with self._lock:
            return self._count


class LocalCaptureSink(BatchingCaptureSink):
    """Writes batches as files under ``root`` with the S3 layout (``<root>/<endpoint>/<variant>/yyyy/...``).

    Each file is written under a temporary name and renamed, so a reader never sees half a batch.
    """

    def __init__(self, root: str | Path, *, max_records: int = 1000, max_seconds: float = 5.0) -> None:
        super().__init__(max_records=max_records, max_seconds=max_seconds)
        self.root = Path(root)

    def _put(self, endpoint_name: str, variant: str, at: datetime, payload: bytes) -> None:
        path = self.root / capture_key("", endpoint_name, variant, at, f"{uuid.uuid4()}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)

    def files(self) -> list[Path]:
        """Every capture file written so far, in path order."""
        return sorted(self.root.rglob("*.jsonl"))


class S3CaptureSink(BatchingCaptureSink):
    """Writes batches as objects ``s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl``.

    ``client`` is a boto3 S3 client (injected: the embedded endpoint, moto or real AWS). With
    ``kms_key_id`` every object is written SSE-KMS with that key, as the capture bucket policy expects.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        kms_key_id: str | None = None,
        max_records: int = 1000,
        max_seconds: float = 60.0,
    ) -> None:
        super().__init__(max_records=max_records, max_seconds=max_seconds)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.kms_key_id = kms_key_id

    def _put(self, endpoint_name: str, variant: str, at: datetime, payload: bytes) -> None:
        key = capture_key(self.prefix, endpoint_name, variant, at, f"{uuid.uuid4()}.jsonl")
        extra: dict[str, str] = {}
        if self.kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=payload, ContentType="application/jsonlines", **extra)


def read_local_captures(root: str | Path) -> Iterable[dict[str, Any]]:
    """Every record under a :class:`LocalCaptureSink` root, file by file in path order."""
    for path in sorted(Path(root).rglob("*.jsonl")):
        yield from iter_capture_lines(path.read_text(encoding="utf-8"))
