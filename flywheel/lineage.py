"""Lineage from records to models: which raw objects a package was trained on, and where a subject's rows are.

Recorded in the package itself (the choice, docs/privacy.md): the ``RegisterModel`` step writes the customer
metadata ``flywheel:input-data-uri`` (the pipeline's ``InputDataUri``: the raw batch prefix) and
``flywheel:execution-id`` (its features prefix ``<pipeline>/<execution>/``), in the cloud and locally alike.
A batch prefix is write-once (the ingest path lands every batch under a new folder; erasure rewrites are
the only later versions), so the raw objects of a package are the object versions under that prefix that
existed when it was registered: :func:`raw_objects` lists them with their version ids.

:func:`find_subject` locates a data subject without storing its id anywhere: the id's HMAC token (the team's
PII key, as preprocessing computes it) is looked up in the curated and features zones, the id itself in the
raw zone (where it is in clear by design).
"""

from __future__ import annotations

from typing import Any

from lambdas.erasure.logic import (
    LINEAGE_EXECUTION_KEY,
    LINEAGE_INPUT_KEY,
    count_rows,
    is_data_key,
    read_pii_key,
    subject_tokens,
    validate_subject,
)
from naming import split_s3_uri


def raw_objects(s3: Any, package: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{bucket, key, version_id, size}]``: the raw data objects the package's training batch held."""
    meta = package.get("CustomerMetadataProperties") or {}
    uri = meta.get(LINEAGE_INPUT_KEY)
    if not uri:
        return []
    bucket, prefix = split_s3_uri(uri)
    created = package.get("CreationTime")
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            modified = version["LastModified"]
            if created is not None and hasattr(created, "timestamp") and modified.timestamp() > created.timestamp():
                continue  # written after registration (an erasure rewrite): not what it was trained on
            if is_data_key(str(version["Key"])):
                out.append(
                    {
                        "bucket": bucket,
                        "key": version["Key"],
                        "version_id": version["VersionId"],
                        "size": version.get("Size"),
                    }
                )
    return sorted(out, key=lambda o: (o["key"], o["version_id"]))


def package_lineage(s3: Any, package: dict[str, Any]) -> dict[str, Any]:
    """The package's lineage record: its batch, execution and raw objects."""
    meta = package.get("CustomerMetadataProperties") or {}
    return {
        "package": package.get("ModelPackageArn"),
        "input_data_uri": meta.get(LINEAGE_INPUT_KEY),
        "execution_id": meta.get(LINEAGE_EXECUTION_KEY),
        "raw_objects": raw_objects(s3, package),
    }


def find_subject(runtime: Any, team: str, subject: str) -> list[dict[str, Any]]:
    """``[{zone, key, rows}]``: the current objects holding the subject's rows (raw: its id; else its token)."""
    from flywheel.erasure import scope_of

    scope = scope_of(runtime, team)
    subject = validate_subject(subject)
    s3 = runtime.aws.client("s3")
    tokens = subject_tokens(read_pii_key(s3, scope), subject)
    found = []
    for zone, bucket, prefix, clear in scope.locations():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                key = str(entry["Key"])
                if not is_data_key(key):
                    continue
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                rows = sum(count_rows(key, body, scope.id_columns, v) for v in ((subject,) if clear else tokens))
                if rows:
                    found.append({"zone": zone, "bucket": bucket, "key": key, "rows": rows})
    return found
