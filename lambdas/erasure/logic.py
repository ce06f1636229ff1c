"""Erase one data subject from a team's raw, curated and feature data — every version — and write a receipt.

:func:`erase` is the whole procedure; the erasure Lambda (:mod:`.handler`) and ``flywheel erase`` both call
it with their own clients (ports: an S3 client and a SageMaker client) and an :class:`ErasureScope`:

1. **Refuse bad input, changing nothing** (:class:`ErasureError`): an empty or oversize subject id, a
   PII zone bucket with a default object-lock retention (*compliance*: no one could delete its versions;
   *governance*: the boundary denies the bypass), a missing PII key.
2. **Find** every object version holding the subject: raw (``<team>/incoming/``, ``<team>/quarantine/``)
   rows whose ``id`` column equals the subject id in clear; curated and features (``<pipeline>/`` of each
   of the team's pipelines) rows whose ``id`` column equals the subject's HMAC token (the team's PII key,
   exactly as ``pipelines/tabular/features.py`` computes it). CSV (``.csv``, ``.csv.gz``, ``.csv.bz2``)
   and parquet objects are read; every version, current and noncurrent (``ListObjectVersions``).
3. **Rewrite** each such key: its current content without the subject's rows (CSV: every other record's
   bytes unchanged; parquet: every other row's values unchanged), put as a new version with the same
   SSE-KMS key; then **delete every other version** of the key by version id (a delete without one only
   adds a marker) — the noncurrent versions that still hold the subject included.
4. **List the model packages** trained on the subject's rows: a package's customer metadata names its raw
   batch (``flywheel:input-data-uri``) and its execution (``flywheel:execution-id``, its features prefix);
   each gets a recommended action (retrain on the erased data; reject the old version).
5. **Write a receipt** to the reports zone (``_erasure/<team>/<request>.json``): what was rewritten, the
   version ids removed, row counts, timestamps, the packages — never the subject id or its token.

Idempotent by construction: a second run finds no version holding the subject, changes nothing, writes no
receipt and says so (status ``nothing-found``). Concurrent erasures of the same keys would race (S3 has no
compare-and-swap on our SDK pin): the deployed function runs with reserved concurrency 1.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

import naming

#: The customer-metadata keys of a registered package that name its training data (pipelines/tabular).
LINEAGE_INPUT_KEY: Final = "flywheel:input-data-uri"
LINEAGE_EXECUTION_KEY: Final = "flywheel:execution-id"
MAX_SUBJECT_CHARS: Final = 256
TOKEN_HEX_CHARS: Final = 32
MIN_PII_KEY_BYTES: Final = 32
CSV_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".csv.gz", ".csv.bz2")
PARQUET_SUFFIXES: Final[tuple[str, ...]] = (".parquet", ".pq")
REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class ErasureError(ValueError):
    """An erasure that cannot be done as asked; nothing was changed. ``code`` names the problem."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ErasureScope:
    """Where one team's data subjects live: its buckets, pipelines, registry and ``id`` columns."""

    team: str
    buckets: dict[str, str]  # zone -> bucket, for raw, curated, features, reports
    pipelines: tuple[str, ...]
    group_name: str
    id_columns: tuple[str, ...]
    reports_kms_key: str | None = None

    @property
    def pii_zones(self) -> tuple[str, ...]:
        """The zones erasure rewrites (the ones that may hold a subject's rows)."""
        return ("raw", "curated", "features")

    def locations(self) -> list[tuple[str, str, str, bool]]:
        """``(zone, bucket, prefix, clear)``: where rows live; ``clear``: ids in clear (raw) vs tokens."""
        raw = self.buckets["raw"]
        out = [
            ("raw", raw, naming.incoming_prefix(self.team), True),
            ("raw", raw, naming.team_quarantine_prefix(self.team), True),
        ]
        for zone in ("curated", "features"):
            out += [(zone, self.buckets[zone], naming.pipeline_prefix(p), False) for p in self.pipelines]
        return out


@dataclass
class ErasedObject:
    """One rewritten key: the rows removed from its current content and the versions deleted."""

    zone: str
    bucket: str
    key: str
    rows_removed: int
    versions_holding_subject: int
    removed_version_ids: list[str]
    new_version_id: str | None

    @property
    def batch(self) -> str | None:
        """The raw batch prefix (``<team>/incoming/<batch>/``) of a raw object, else None."""
        parts = self.key.split("/")
        if self.zone == "raw" and len(parts) >= 4 and parts[1] == naming.INCOMING:
            return "/".join(parts[:3]) + "/"
        return None


@dataclass
class AffectedPackage:
    """A model package whose training data held the subject, and what to do about it."""

    arn: str
    version: int
    status: str
    reason: str
    action: str


@dataclass
class ErasureReceipt:
    """The outcome of one erasure (the receipt written to the reports zone: no subject id, no token)."""

    request_id: str
    team: str
    status: str  # "erased" | "nothing-found"
    started: str
    finished: str = ""
    objects: list[ErasedObject] = field(default_factory=list)
    packages: list[AffectedPackage] = field(default_factory=list)
    objects_scanned: int = 0
    versions_scanned: int = 0
    receipt_uri: str | None = None

    @property
    def batches(self) -> list[str]:
        """The raw batches (prefixes) that held the subject."""
        return sorted({o.batch for o in self.objects if o.batch})

    @property
    def rows_removed(self) -> int:
        """Rows removed from current objects, all zones."""
        return sum(o.rows_removed for o in self.objects)

    @property
    def versions_removed(self) -> int:
        """Object versions deleted, all zones."""
        return sum(len(o.removed_version_ids) for o in self.objects)

    def message(self) -> str:
        """One line for a person."""
        if self.status == "nothing-found":
            return (
                f"no object version of team {self.team} holds this subject ({self.versions_scanned} version(s) "
                f"of {self.objects_scanned} object(s) read): nothing to erase — already erased, or never landed"
            )
        return (
            f"erased: {self.rows_removed} row(s) removed from {len(self.objects)} object(s) in "
            f"{len({o.zone for o in self.objects})} zone(s), {self.versions_removed} version(s) deleted; "
            f"{len(self.packages)} model package(s) trained on the subject's rows"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out.update(
            batches=self.batches,
            rows_removed=self.rows_removed,
            versions_removed=self.versions_removed,
            message=self.message(),
        )
        return out


# --- tokens and input ------------------------------------------------------------------------------


def subject_token(key: bytes, subject: str) -> str:
    """The subject id's v1 token: HMAC-SHA256 (hex, first 128 bits), ``features.HmacTokenizer``'s value."""
    if len(key) < MIN_PII_KEY_BYTES:
        raise ErasureError("InvalidPiiKey", f"the team's PII key is shorter than {MIN_PII_KEY_BYTES} bytes")
    return hmac.new(key, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


#: Domain-separation label of the v2 token key (``features.CmacTokenizer``; decision record 0007 under docs/decisions/).
_CMAC_KEY_LABEL: Final = b"flywheel/token/v2/aes-256-cmac"


def subject_token_v2(key: bytes, subject: str) -> str:
    """The subject id's v2 token: AES-256-CMAC under ``HMAC-SHA256(key, label)``, ``features.CmacTokenizer``'s
    value, computed here with ``cryptography``'s own CMAC (one id: no buffer tricks needed)."""
    if len(key) < MIN_PII_KEY_BYTES:
        raise ErasureError("InvalidPiiKey", f"the team's PII key is shorter than {MIN_PII_KEY_BYTES} bytes")
    try:
        from cryptography.hazmat.primitives.ciphers import algorithms
        from cryptography.hazmat.primitives.cmac import CMAC
    except ImportError as exc:  # a missing library must not silently skip v2 data
        raise ErasureError(
            "TokenLibraryMissing", "the `cryptography` package is needed to find v2 tokens: add it to the package"
        ) from exc
    mac = CMAC(algorithms.AES(hmac.new(key, _CMAC_KEY_LABEL, hashlib.sha256).digest()))
    mac.update(subject.encode("utf-8"))
    return mac.finalize().hex()


def subject_tokens(key: bytes, subject: str) -> tuple[str, ...]:
    """Every token the subject's rows may carry: one per construction the template ever wrote (v1, v2)."""
    return (subject_token(key, subject), subject_token_v2(key, subject))


def validate_subject(subject: object) -> str:
    """The subject id, stripped; ErasureError for an empty, oversize or control-character id."""
    if not isinstance(subject, str) or not subject.strip():
        raise ErasureError("EmptySubject", "the subject id is empty: give the data subject's id (an `id` column value)")
    value = subject.strip()
    if len(value) > MAX_SUBJECT_CHARS or _CONTROL.search(value):
        raise ErasureError("InvalidSubject", f"the subject id must be at most {MAX_SUBJECT_CHARS} printable characters")
    return value


def validate_request_id(request_id: object) -> str:
    """A receipt-safe request id (letters, digits, ``._-``; at most 64)."""
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise ErasureError("InvalidRequestId", f"request id {str(request_id)[:80]!r} must match {REQUEST_ID.pattern}")
    return request_id


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def assert_erasable(s3: Any, scope: ErasureScope) -> dict[str, bool]:
    """Refuse (ErasureError) a PII zone bucket with a default object-lock retention (compliance: impossible;
    governance: needs a bypass the boundary denies) before any change; returns zone -> bypass needed (False)."""
    governance: dict[str, bool] = {}
    for zone in scope.pii_zones:
        bucket = scope.buckets[zone]
        try:
            config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        except ClientError as exc:
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"):
                governance[zone] = False
                continue
            raise
        mode = config.get("Rule", {}).get("DefaultRetention", {}).get("Mode")
        if mode == "COMPLIANCE":
            raise ErasureError(
                "ComplianceLocked",
                f"the {zone} zone's bucket is in object-lock compliance mode: no version can be deleted before its "
                "retention ends, so erasure is impossible there. PII zones must not use compliance mode",
            )
        if mode == "GOVERNANCE":
            raise ErasureError(
                "GovernanceLocked",
                f"the {zone} zone's bucket is in object-lock governance mode (a default retention): deleting its "
                "versions needs s3:BypassGovernanceRetention, which the permissions boundary denies every Flywheel "
                "role. PII zones "
                "carry no object lock (stacks/components/data_lake.py): remove the default retention",
            )
        governance[zone] = False
    return governance


def read_pii_key(s3: Any, scope: ErasureScope) -> bytes:
    """The team's PII key (stripped, as preprocessing reads it); ErasureError if it does not exist."""
    try:
        body = s3.get_object(Bucket=scope.buckets["raw"], Key=naming.pii_key_object(scope.team))["Body"].read()
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404", "NoSuchBucket"):
            raise ErasureError(
                "NoPiiKey", f"team {scope.team} has no PII key in its raw zone: it has no tokenized data to erase"
            ) from None
        raise
    return bytes(body).strip()


# --- formats -----------------------------------------------------------------------------------------


def is_data_key(key: str) -> bool:
    """Whether ``key`` names a CSV or parquet data object (not a marker or hidden file)."""
    lower = key.lower()
    return lower.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES) and not key.rsplit("/", 1)[-1].startswith((".", "_"))


def _decompress(key: str, body: bytes) -> bytes:
    lower = key.lower()
    if lower.endswith(".gz"):
        return gzip.decompress(body)
    if lower.endswith(".bz2"):
        return bz2.decompress(body)
    return body


def _compress(key: str, data: bytes) -> bytes:
    lower = key.lower()
    if lower.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if lower.endswith(".bz2"):
        return bz2.compress(data)
    return data


def csv_records(text: str) -> Iterator[str]:
    """The records of CSV ``text`` with their line endings (a quoted field may span lines)."""
    pending: list[str] = []
    quotes = 0
    for line in text.splitlines(keepends=True):
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield "".join(pending)
            pending, quotes = [], 0
    if pending:
        yield "".join(pending)


def remove_csv_rows(data: bytes, columns: Sequence[str], value: str) -> tuple[bytes, int]:
    """``data`` without the records whose ``columns`` field equals ``value``; other bytes unchanged."""
    text = data.decode("utf-8")
    records = csv_records(text)
    header = next(records, None)
    if header is None:
        return data, 0
    names = next(csv.reader([header]))
    indexes = [i for i, n in enumerate(names) if n.strip().lstrip("\ufeff") in columns]
    if not indexes:
        return data, 0
    kept = [header]
    removed = 0
    for record in records:
        if value in record:  # a cheap necessary condition before parsing the record
            fields = next(csv.reader([record]), [])
            if any(i < len(fields) and fields[i].strip() == value for i in indexes):
                removed += 1
                continue
        kept.append(record)
    if not removed:
        return data, 0
    if removed and not kept[-1].endswith(("\n", "\r")) and len(kept) > 1 and text.endswith(("\n", "\r")):
        kept[-1] += "\n"
    return "".join(kept).encode("utf-8"), removed


def remove_parquet_rows(data: bytes, columns: Sequence[str], value: str) -> tuple[bytes, int]:
    """``data`` without the rows whose ``columns`` value (as text) equals ``value``; other rows unchanged."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    present = [c for c in columns if c in table.column_names]
    if not present or not table.num_rows:
        return data, 0
    hit = None
    for name in present:
        match = pc.fill_null(pc.equal(pc.cast(table.column(name), pa.string()), value), False)
        hit = match if hit is None else pc.or_(hit, match)
    assert hit is not None
    removed = int(pc.sum(hit).as_py() or 0)
    if not removed:
        return data, 0
    out = io.BytesIO()
    pq.write_table(table.filter(pc.invert(hit)), out)
    return out.getvalue(), removed


def count_rows(key: str, body: bytes, columns: Sequence[str], value: str) -> int:
    """How many rows of the object hold ``value`` in one of ``columns`` (reads only what it must)."""
    if key.lower().endswith(PARQUET_SUFFIXES):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        source = pa.BufferReader(body)
        present = [c for c in columns if c in pq.read_schema(source).names]
        if not present:
            return 0
        table = pq.read_table(pa.BufferReader(body), columns=present)
        total = 0
        for name in present:
            match = pc.equal(pc.cast(table.column(name), pa.string()), value)
            total += int(pc.sum(pc.fill_null(match, False)).as_py() or 0)
        return total  # a row matching in two id columns counts twice: only zero matters here
    data = _decompress(key, body)
    needle, quoted = value.encode("utf-8"), value.replace('"', '""').encode("utf-8")
    if needle not in data and quoted not in data:
        return 0  # an exact field match needs the bytes somewhere (CSV only doubles quotes)
    return remove_csv_rows(data, columns, value)[1]


def remove_rows(key: str, body: bytes, columns: Sequence[str], value: str) -> tuple[bytes, int]:
    """The object's bytes without the subject's rows, and how many were removed (0: unchanged)."""
    if key.lower().endswith(PARQUET_SUFFIXES):
        return remove_parquet_rows(body, columns, value)
    data = _decompress(key, body)
    if value.encode("utf-8") not in data and value.replace('"', '""').encode("utf-8") not in data:
        return body, 0
    cleaned, removed = remove_csv_rows(data, columns, value)
    return (_compress(key, cleaned) if removed else body), removed


# --- the procedure -----------------------------------------------------------------------------------


def _versions(s3: Any, bucket: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """key -> its versions and delete markers (newest first) under ``prefix``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Versions", []):
            out.setdefault(str(entry["Key"]), []).append({**entry, "marker": False})
        for entry in page.get("DeleteMarkers", []):
            out.setdefault(str(entry["Key"]), []).append({**entry, "marker": True})
    for entries in out.values():
        entries.sort(key=lambda e: (not e.get("IsLatest", False), -e["LastModified"].timestamp()))
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def erase(
    s3: Any,
    sagemaker: Any,
    scope: ErasureScope,
    subject: object,
    *,
    request_id: str,
    write_receipt: bool = True,
    now: Callable[[], str] = _now,
) -> ErasureReceipt:
    """Erase ``subject`` from ``scope`` (see the module docstring); returns the receipt."""
    subject = validate_subject(subject)
    request_id = validate_request_id(request_id)
    if not scope.id_columns:
        raise ErasureError("NoIdColumns", f"team {scope.team}'s data contract has no `id` column to find a subject by")
    governance = assert_erasable(s3, scope)
    tokens = subject_tokens(read_pii_key(s3, scope), subject)
    receipt = ErasureReceipt(request_id=request_id, team=scope.team, status="nothing-found", started=now())
    plans: list[tuple[str, str, str, str, list[dict[str, Any]], int]] = []
    for zone, bucket, prefix, clear in scope.locations():
        candidates = (subject,) if clear else tokens
        for key, versions in sorted(_versions(s3, bucket, prefix).items()):
            if not is_data_key(key):
                continue
            receipt.objects_scanned += 1
            holding = 0
            value = candidates[0]
            for version in versions:
                if version["marker"]:
                    continue
                receipt.versions_scanned += 1
                body = s3.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Body"].read()
                # One object is written under one token construction: the first candidate it holds is its own.
                found = next((c for c in candidates if count_rows(key, body, scope.id_columns, c)), None)
                if found is not None:
                    holding += 1
                    value = found
            if holding:
                plans.append((zone, bucket, key, value, versions, holding))
    if not plans:
        receipt.finished = now()
        return receipt
    receipt.status = "erased"
    for zone, bucket, key, value, versions, holding in plans:
        receipt.objects.append(_rewrite(s3, zone, bucket, key, value, versions, holding, scope, governance[zone]))
    receipt.packages = affected_packages(sagemaker, scope, receipt.objects)
    receipt.finished = now()
    if write_receipt:
        receipt.receipt_uri = _write_receipt(s3, scope, receipt)
    return receipt


def _rewrite(
    s3: Any,
    zone: str,
    bucket: str,
    key: str,
    value: str,
    versions: list[dict[str, Any]],
    holding: int,
    scope: ErasureScope,
    governance: bool,
) -> ErasedObject:
    """Put the current content without the subject, then delete every other version of ``key``."""
    current = versions[0]
    new_version: str | None = None
    removed_rows = 0
    if not current["marker"]:
        got = s3.get_object(Bucket=bucket, Key=key, VersionId=current["VersionId"])
        cleaned, removed_rows = remove_rows(key, got["Body"].read(), scope.id_columns, value)
        if removed_rows:
            extra: dict[str, Any] = {}
            if got.get("SSEKMSKeyId"):
                extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": got["SSEKMSKeyId"]}
            put = s3.put_object(
                Bucket=bucket, Key=key, Body=cleaned, ContentType=got.get("ContentType", "binary/octet-stream"), **extra
            )
            new_version = put.get("VersionId")
    # Every other version goes: the old current one and all noncurrent versions (and delete markers).
    # A clean current version stays; otherwise every old version goes (it was rewritten, or deleted).
    kept = 0 if new_version is not None or current["marker"] else 1
    doomed = [str(v["VersionId"]) for v in versions[kept:]]
    for start in range(0, len(doomed), 1000):
        chunk = doomed[start : start + 1000]
        response = s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key, "VersionId": v} for v in chunk], "Quiet": True},
            **({"BypassGovernanceRetention": True} if governance else {}),
        )
        errors = response.get("Errors", [])
        if errors:
            raise RuntimeError(
                f"could not delete {len(errors)} version(s) of s3://{bucket}/{key}: {errors[0].get('Code')}"
            )
    return ErasedObject(zone, bucket, key, removed_rows, holding, doomed, new_version)


def affected_packages(sagemaker: Any, scope: ErasureScope, objects: Sequence[ErasedObject]) -> list[AffectedPackage]:
    """The team's packages whose raw batch or features prefix held the subject, with what to do."""
    raw_keys = [o.key for o in objects if o.zone == "raw"]
    feature_keys = [o.key for o in objects if o.zone in ("curated", "features")]
    out: list[AffectedPackage] = []
    try:
        pages = list(sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=scope.group_name))
    except ClientError as exc:
        if _code(exc) in ("ValidationException", "ResourceNotFound"):
            return []
        raise
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            meta = package.get("CustomerMetadataProperties") or {}
            reasons = []
            uri = str(meta.get(LINEAGE_INPUT_KEY, ""))
            if uri.startswith(naming.S3_SCHEME):
                bucket, prefix = naming.split_s3_uri(uri)
                prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
                if bucket == scope.buckets["raw"] and any(k.startswith(prefix) for k in raw_keys):
                    reasons.append(f"trained on raw batch {prefix}")
            execution = str(meta.get(LINEAGE_EXECUTION_KEY, ""))
            if execution and any(f"/{execution}/" in f"/{k}" for k in feature_keys):
                reasons.append(f"its features (execution {execution}) held the subject")
            if reasons:
                status = str(package.get("ModelApprovalStatus", ""))
                out.append(
                    AffectedPackage(
                        arn=str(package["ModelPackageArn"]),
                        version=int(package.get("ModelPackageVersion", 0)),
                        status=status,
                        reason="; ".join(reasons),
                        action=recommended_action(status),
                    )
                )
    return sorted(out, key=lambda p: p.version)


def recommended_action(status: str) -> str:
    """What to do with a package trained on erased rows, by its approval status."""
    if status == "Approved":
        return (
            "retrain on the erased data (land the erased batch again, or `flywheel erase --retrain`), approve the "
            "new version, then reject this one: its model was fitted on the subject's rows"
        )
    if status == "PendingManualApproval":
        return "reject it and retrain on the erased data: its model was fitted on the subject's rows"
    return "none needed for serving (rejected); delete its artifact when its retention allows"


def _write_receipt(s3: Any, scope: ErasureScope, receipt: ErasureReceipt) -> str:
    bucket = scope.buckets["reports"]
    key = f"{naming.erasure_receipt_prefix(scope.team)}{receipt.request_id}.json"
    receipt.receipt_uri = naming.s3_uri(bucket, key)
    extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
    if scope.reports_kms_key:
        extra["SSEKMSKeyId"] = scope.reports_kms_key
    body = json.dumps(receipt.to_dict(), indent=2, sort_keys=True).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **extra)
    return receipt.receipt_uri
