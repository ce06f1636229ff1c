"""The model registry, mirrored in the state dir so that it outlives the embedded AWS.

The embedded AWS lives as long as one process (or one ``flywheel up``); the registry is the approval
record and must outlive it, like the stack retains the real one. Every registered package is
snapshotted in the state dir (``DescribeModelPackage``, local copies of the S3 objects it references,
and the execution that registered it) and replayed, with the same versions and approval statuses,
into a fresh embedded AWS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from flywheel.embedded import EmbeddedAws
from flywheel.executor.pipeline import jsonable
from flywheel.state import StateStore
from naming import S3_SCHEME, split_s3_uri


def list_packages(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    """The group's package summaries (all statuses), oldest first; [] if the group does not exist."""
    found: list[dict[str, Any]] = []
    try:
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            found.extend(jsonable(page["ModelPackageSummaryList"]))
    except ClientError:
        return []
    return sorted(found, key=lambda p: int(p.get("ModelPackageVersion", 0)))


class RegistryMirror:
    """Snapshots of the embedded registry's packages in the state dir, and their replay."""

    def __init__(self, aws: EmbeddedAws, state: StateStore) -> None:
        self.aws = aws
        self.state = state

    def snapshot(self, package_arn: str, *, execution_arn: str | None = None) -> None:
        """Snapshot one package as the registry has it now.

        ``execution_arn`` is the run that registered it (given at registration; later snapshots, e.g. on
        approval, keep the recorded one).
        """
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        package = jsonable(sm.describe_model_package(ModelPackageName=package_arn))
        group, version = str(package["ModelPackageGroupName"]), int(package["ModelPackageVersion"])
        if execution_arn is None:
            execution_arn = (self.state.package(group, version) or {}).get("execution_arn")
        folder = self.state.registry_dir(group) / f"{version:06d}"
        objects: dict[str, str] = {}
        for uri in sorted(_s3_uris(package)):
            bucket, key = split_s3_uri(uri)
            relative = Path("objects", bucket, *key.split("/"))
            if ".." in relative.parts or not key:
                continue
            local = folder / relative
            if not local.is_file():
                local.parent.mkdir(parents=True, exist_ok=True)
                try:
                    s3.download_file(bucket, key, str(local))
                except ClientError:
                    continue  # a prefix or a missing object: nothing to keep
            objects[uri] = relative.as_posix()
        self.state.save_package(
            group, version, {"package": package, "objects": objects, "execution_arn": execution_arn}
        )

    def execution_of(self, group: str, version: int) -> dict[str, Any] | None:
        """The execution record of the run that registered package ``version`` of ``group``, or None."""
        arn = (self.state.package(group, version) or {}).get("execution_arn")
        return self.state.execution(str(arn).rsplit("/", 1)[-1]) if arn else None

    def restore(self, group: str) -> None:
        """Replay the group's snapshots into the embedded registry (versions it lacks, in order)."""
        snapshots = self.state.packages(group)
        if not snapshots:
            return
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        existing = {int(p["ModelPackageVersion"]) for p in list_packages(sm, group)}
        accepted = set(sm.meta.service_model.operation_model("CreateModelPackage").input_shape.members)
        folder = self.state.registry_dir(group)
        for snapshot in sorted(snapshots, key=lambda r: int(r["package"]["ModelPackageVersion"])):
            package = snapshot["package"]
            version = int(package["ModelPackageVersion"])
            if version in existing:
                continue
            if version != len(existing) + 1:
                break  # a registry with another history: do not invent versions
            for uri, relative in snapshot.get("objects", {}).items():
                bucket, key = split_s3_uri(uri)
                local = folder / f"{version:06d}" / relative
                if local.is_file():
                    s3.upload_file(str(local), bucket, key)
            arguments = {
                k: v
                for k, v in package.items()
                if k in accepted and k not in ("ModelPackageName", "ClientToken") and v not in (None, {}, [])
            }
            created = sm.create_model_package(**arguments)
            if created["ModelPackageArn"] != package["ModelPackageArn"]:
                break
            existing.add(version)

    def summaries(self, group: str) -> list[dict[str, Any]]:
        """The group's packages as the snapshots keep them (no embedded AWS needed)."""
        return [
            {k: r["package"].get(k) for k in ("ModelPackageArn", "ModelPackageVersion", "ModelApprovalStatus")}
            for r in self.state.packages(group)
        ]


def _s3_uris(value: Any) -> set[str]:
    """Every ``s3://`` string in a JSON value."""
    if isinstance(value, str):
        return {value} if value.startswith(S3_SCHEME) else set()
    if isinstance(value, dict):
        return set().union(*(_s3_uris(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_s3_uris(v) for v in value)) if value else set()
    return set()
