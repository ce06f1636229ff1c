"""The model registry, mirrored in the state dir so that it outlives the embedded AWS.

The embedded AWS lives as long as one process (or one ``flywheel up``); the registry is the approval
record and must outlive it, like the stack retains the real one. Every registered package is
snapshotted in the state dir (``DescribeModelPackage``, local copies of the S3 objects it references,
and the execution that registered it) and replayed, with the same versions and approval statuses,
into a fresh embedded AWS.

Versions are allocated by the embedded registry, and several processes may share one state dir (each
with its own in-process embedded AWS, or all on one ``flywheel up``): :meth:`RegistryMirror.register`
therefore holds the group's state lock while it replays the snapshots other processes wrote since
(so the embedded registry is up to date), creates the package and snapshots it exclusively. Two
concurrent runs get two versions; neither package replaces the other.

A snapshot that cannot be read is reported (:attr:`flywheel.state.StateStore.problems`) and skipped:
its version is replayed as a Rejected placeholder that says so, so the group's later packages keep
their versions and the team's other packages stay usable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from flywheel.embedded import ACCOUNT, NAMES, EmbeddedAws
from flywheel.errors import FlywheelError, UnknownPackageError
from flywheel.executor.pipeline import jsonable
from flywheel.state import StateStore
from lambdas import lifecycle
from naming import S3_SCHEME, split_s3_uri

#: The description of a placeholder replayed for a version whose snapshot is corrupt.
PLACEHOLDER: Final = "placeholder: the state dir's snapshot of this version is corrupt ({path})"


def is_placeholder(package: dict[str, Any]) -> bool:
    """Whether a described package is the placeholder replayed for a corrupt snapshot."""
    return str(package.get("ModelPackageDescription", "")).startswith(PLACEHOLDER.split(" (")[0])


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

    def register(self, arguments: dict[str, Any], *, execution_arn: str | None = None) -> str:
        """``CreateModelPackage`` with ``arguments``, then its snapshot, under the group's state lock;
        returns the package ARN. The group's snapshots are replayed first, so a version another process
        registered (on its own embedded AWS) is never allocated again."""
        group = str(arguments["ModelPackageGroupName"])
        with self.state.lock(f"registry-{group}"):
            self.restore(group)
            created = self.aws.client("sagemaker").create_model_package(**arguments)
            arn = str(created["ModelPackageArn"])
            self.snapshot(arn, execution_arn=execution_arn, create=True)
        return arn

    def snapshot(self, package_arn: str, *, execution_arn: str | None = None, create: bool = False) -> None:
        """Snapshot one package as the registry has it now (under the group's state lock).

        ``execution_arn`` is the run that registered it (given at registration; later snapshots, e.g. on
        approval, keep the recorded one). ``create``: a new registration, whose snapshot must not exist yet.
        """
        sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
        package = jsonable(sm.describe_model_package(ModelPackageName=package_arn))
        group, version = str(package["ModelPackageGroupName"]), int(package["ModelPackageVersion"])
        if is_placeholder(package):
            raise FlywheelError(
                f"version {version} of {group} is a placeholder for a corrupt snapshot "
                f"({self.state.package_path(group, version)}): restore that file first"
            )
        with self.state.lock(f"registry-{group}"):
            if execution_arn is None and not create:
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
                    local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    try:
                        s3.download_file(bucket, key, str(local))
                    except ClientError:
                        continue  # a prefix or a missing object: nothing to keep
                objects[uri] = relative.as_posix()
            self.state.save_package(
                group, version, {"package": package, "objects": objects, "execution_arn": execution_arn}, create=create
            )

    def execution_of(self, group: str, version: int) -> dict[str, Any] | None:
        """The execution record of the run that registered package ``version`` of ``group``, or None."""
        arn = (self.state.package(group, version) or {}).get("execution_arn")
        return self.state.execution(str(arn).rsplit("/", 1)[-1]) if arn else None

    def restore(self, group: str) -> None:
        """Replay the group's snapshots into the embedded registry (versions it lacks, in order), under the
        group's state lock; a corrupt snapshot's version becomes a Rejected placeholder."""
        with self.state.lock(f"registry-{group}"):
            snapshots = {int(r["package"]["ModelPackageVersion"]): r for r in self.state.packages(group)}
            corrupt = self.state.corrupt_package_versions(group)
            if not snapshots:
                return
            sm, s3 = self.aws.client("sagemaker"), self.aws.client("s3")
            existing = {int(p["ModelPackageVersion"]) for p in list_packages(sm, group)}
            accepted = set(sm.meta.service_model.operation_model("CreateModelPackage").input_shape.members)
            folder = self.state.registry_dir(group)
            for version in range(1, max(snapshots) + 1):
                if version in existing:
                    continue
                if version != len(existing) + 1:
                    break  # a registry with another history: do not invent versions
                snapshot = snapshots.get(version)
                if snapshot is None:
                    if version not in corrupt:
                        break  # a gap: nothing to replay it from
                    path = self.state.package_path(group, version)
                    created = sm.create_model_package(
                        ModelPackageGroupName=group,
                        ModelApprovalStatus="Rejected",
                        ModelPackageDescription=PLACEHOLDER.format(path=path)[:1024],
                    )
                    existing.add(version)
                    continue
                package = snapshot["package"]
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


def resolve_package(
    aws: EmbeddedAws,
    ref: str,
    teams: Sequence[str],
    check_team: Callable[[str], object],
    provision: Callable[[str], object],
) -> tuple[str, dict[str, Any]]:
    """``(team, DescribeModelPackage)`` for an ARN or ``<team>:<version>`` of one of ``teams``
    (``check_team`` validates a named team, ``provision`` provisions it); UnknownPackageError otherwise."""
    ref = ref.strip()
    if ref.startswith("arn:"):
        match = lifecycle._PACKAGE_ARN.match(ref)
        if match is None:
            raise UnknownPackageError(f"{ref!r} is not a model package ARN (…:model-package/<group>/<version>)")
        team = next((t for t in teams if NAMES.model_package_group(t) == match["group"]), None)
        if team is None:
            raise UnknownPackageError(f"model package group {match['group']!r} belongs to no configured team")
        arn = ref
    else:
        team, sep, version = ref.partition(":")
        if not sep or not version.isdigit():
            raise UnknownPackageError(f"{ref!r} is neither a model package ARN nor <team>:<version> (e.g. churn:1)")
        check_team(team)
        group = NAMES.model_package_group(team)
        arn = f"arn:aws:sagemaker:{aws.region}:{ACCOUNT}:model-package/{group}/{int(version)}"
    provision(team)
    try:
        package = aws.client("sagemaker").describe_model_package(ModelPackageName=arn)
    except ClientError:
        packages = list_packages(aws.client("sagemaker"), NAMES.model_package_group(team))
        versions = [str(p["ModelPackageVersion"]) for p in packages]
        hint = (
            f"known versions: {', '.join(versions)}"
            if versions
            else "the registry is empty (packages live as long as the embedded AWS: run `flywheel up` "
            "and register with `flywheel run` while it runs, or use `flywheel demo`)"
        )
        raise UnknownPackageError(
            f"no model package {ref!r} in group {NAMES.model_package_group(team)}; {hint}"
        ) from None
    return team, jsonable(package)
