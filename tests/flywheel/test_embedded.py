"""The embedded AWS: provisioning (names, keys, encryption, the deployed definition) and idempotency."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import naming
from config.loader import load_config
from config.models import FlywheelConfig
from flywheel import embedded as emb
from flywheel.embedded import EmbeddedAws
from pipelines.tabular.definition import TabularPipelineInputs, build_pipeline_definition


@pytest.fixture(scope="module")
def flywheel_config() -> FlywheelConfig:
    return load_config()


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedAws]:
    """One provisioned embedded AWS for the module (provisioning builds the definition: ~1 s)."""
    with emb.in_process() as aws:
        yield aws


def provision(aws: EmbeddedAws, config: FlywheelConfig, teams: list[str]) -> dict[str, emb.TeamResources]:
    """The platform and the named teams, as the runtime provisions them (without its state dir)."""
    platform = emb.provision_platform(aws)
    return {name: emb.provision_team(aws, config.team(name), platform) for name in teams}


@pytest.fixture(scope="module")
def churn(embedded: EmbeddedAws, flywheel_config: FlywheelConfig) -> emb.TeamResources:
    return provision(embedded, flywheel_config, ["churn"])["churn"]


def test_zones_have_their_own_keys_and_default_sse_kms(embedded: EmbeddedAws, churn: emb.TeamResources) -> None:
    s3 = embedded.client("s3")
    platform = churn.platform
    assert set(platform.buckets) == set(naming.ZONES) and len(set(platform.keys.values())) == len(naming.ZONES)
    assert platform.ml_key_arn not in platform.keys.values()
    for zone, bucket in platform.buckets.items():
        assert bucket == f"flywheel-local-{zone}"
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": platform.keys[zone],
        }
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        # A Deny-without-TLS policy would lock moto out (it ignores the condition): none is set.
        with pytest.raises(s3.exceptions.ClientError):
            s3.get_bucket_policy(Bucket=bucket)
    assert embedded.client("kms").get_key_rotation_status(KeyId=platform.keys["raw"])["KeyRotationEnabled"]


def test_team_resources_use_the_stack_names(embedded: EmbeddedAws, churn: emb.TeamResources) -> None:
    sm = embedded.client("sagemaker")
    assert list(churn.pipelines) == ["tabular", "batch-scoring"] and churn.primary is churn.pipeline("tabular")
    tabular = churn.pipeline("tabular")
    assert tabular.pipeline_name == "flywheel-local-churn-tabular"
    assert churn.group_name == "flywheel-local-churn"
    assert sm.describe_model_package_group(ModelPackageGroupName="flywheel-local-churn")
    pipeline = sm.describe_pipeline(PipelineName=tabular.pipeline_name)
    assert pipeline["PipelineDefinition"] == tabular.definition and pipeline["RoleArn"] == churn.role_arn
    assert tabular.role_arn == churn.role_arn
    assert churn.role_arn.endswith(":role/flywheel-local-churn-execution")
    assert tabular.source_uri.startswith("s3://flywheel-local-artifacts/_code/tabular/")
    assert tabular.source_uri.endswith("/sourcedir.tar.gz")
    assert list(tabular.file_uris) == ["contract", "no_champion", "card"]
    assert tabular.file_uris["contract"].endswith("/contract.json")
    assert tabular.file_uris["no_champion"].endswith("/no-champion.json")
    assert churn.pii_key_uri == "s3://flywheel-local-raw/churn/_keys/pii-hmac.key"


def test_the_local_definition_is_the_one_the_stack_builds(
    churn: emb.TeamResources, flywheel_config: FlywheelConfig
) -> None:
    """Same inputs, same JSON: the stack calls build_pipeline_definition with the inputs mapped the same way."""
    team = flywheel_config.team("churn")
    tabular = churn.pipeline("tabular")
    assert tabular.definition == build_pipeline_definition(tabular.inputs)
    expected = TabularPipelineInputs(
        pipeline_name="flywheel-local-churn-tabular",
        region=emb.REGION,
        role_arn=churn.role_arn,
        # Locally every step kind runs as the team's one local role (the embedded AWS enforces no IAM).
        preprocessing_role_arn=churn.role_arn,
        training_role_arn=churn.role_arn,
        evaluation_role_arn=churn.role_arn,
        team="churn",
        source_sha256=hashlib.sha256(tabular.template.sourcedir_bytes()).hexdigest(),
        kms_key_arn=churn.platform.ml_key_arn,
        subnet_ids=emb.LOCAL_SUBNETS,
        security_group_ids=emb.LOCAL_SECURITY_GROUPS,
        raw_bucket="flywheel-local-raw",
        features_bucket="flywheel-local-features",
        artifacts_bucket="flywheel-local-artifacts",
        reports_bucket="flywheel-local-reports",
        source_uri=tabular.source_uri,
        contract_uri=tabular.file_uris["contract"],
        no_champion_uri=tabular.file_uris["no_champion"],
        card_uri=tabular.file_uris["card"],
        model_package_group_name="flywheel-local-churn",
        objective=team.contract.objective,
        gate_metric=team.metric_gate.metric,
        gate_threshold=team.metric_gate.threshold,
        higher_is_better=team.higher_is_better,
        processing_instance_type=team.instances.processing,
        training_instance_type=team.instances.training,
        evaluation_instance_type=team.instances.processing,
        preprocess_instance_count=team.instances.processing_count,
        pii_key_prefix="churn/_keys/",
        local_overrides=True,  # the local build: GateThreshold is a labelled local-only parameter
    )
    assert dataclasses.asdict(tabular.inputs) == dataclasses.asdict(expected)
    doc = json.loads(tabular.definition)
    assert [s["Name"] for s in doc["Steps"]] == ["Preprocess", "DataContractCheck"]


def test_code_contract_and_pii_key_are_uploaded(embedded: EmbeddedAws, churn: emb.TeamResources) -> None:
    from pipelines import TEMPLATES
    from pipelines.packaging import sourcedir_bytes

    s3 = embedded.client("s3")

    def body(uri: str) -> bytes:
        bucket, key = naming.split_s3_uri(uri)
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    tabular = churn.pipeline("tabular")
    assert body(tabular.source_uri) == sourcedir_bytes(TEMPLATES["tabular"])
    assert json.loads(body(tabular.file_uris["contract"]))["target"] == "churned"
    key = body(churn.pii_key_uri)
    assert len(key) == 64 and key not in Path(emb.__file__).read_bytes()
    bucket, object_key = naming.split_s3_uri(churn.pii_key_uri)
    head = s3.head_object(Bucket=bucket, Key=object_key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == churn.platform.keys["raw"]


def test_provisioning_twice_is_idempotent(
    embedded: EmbeddedAws, churn: emb.TeamResources, flywheel_config: FlywheelConfig
) -> None:
    again = provision(embedded, flywheel_config, ["churn", "diagnostics"])
    assert again["churn"].platform == churn.platform
    assert again["churn"].pii_key_uri == churn.pii_key_uri
    assert again["churn"].pipeline("tabular").definition == churn.pipeline("tabular").definition
    s3 = embedded.client("s3")
    bucket, key = naming.split_s3_uri(churn.pii_key_uri)
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 1  # the key was not replaced
    assert len(embedded.client("kms").list_keys()["Keys"]) == len(naming.ZONES) + 1
    other = s3.get_object(Bucket=bucket, Key="diagnostics/_keys/pii-hmac.key")["Body"].read()
    assert other != s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # one key per team


def test_the_definition_inputs_are_mapped_from_config_exactly_as_the_stack_maps_them(
    churn: emb.TeamResources, flywheel_config: FlywheelConfig
) -> None:
    """Build the stack's pipeline construct and compare its inputs with ours, account values aside."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_kms as kms

    from stacks.components.ml_pipeline import MlPipeline

    env = flywheel_config.environment("dev").model_copy(update={"name": "local"})
    stack = Stack(App(), "Probe", env={"account": env.account, "region": env.region})
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    ])  # fmt: skip
    keys = {zone: kms.Key(stack, f"Key{zone}") for zone in ("raw", "features", "artifacts", "reports")}
    team = flywheel_config.team("churn")
    construct = MlPipeline(
        stack,
        "Tabular",
        env_name=env.name,
        team_name=team.name,
        template=team.template("tabular"),
        settings=team.template_settings("tabular"),
        zone_keys=dict(keys),
        job_key=kms.Key(stack, "Jobs"),
        subnets=vpc.isolated_subnets,
        security_group=ec2.SecurityGroup(stack, "Sg", vpc=vpc),
        model_package_group_name="flywheel-local-churn",
    )
    account_specific = (
        "role_arn",
        "preprocessing_role_arn",
        "training_role_arn",
        "evaluation_role_arn",
        "kms_key_arn",
        "subnet_ids",
        "security_group_ids",
        "raw_bucket",
        "features_bucket",
        "artifacts_bucket",
        "reports_bucket",
        "source_uri",
        "contract_uri",
        "no_champion_uri",
        "card_uri",
    )
    inputs = churn.pipeline("tabular").inputs
    same = {f: getattr(inputs, f) for f in account_specific}
    # The only other difference: the local build's labelled override parameters.
    assert construct.definition_inputs.local_overrides is False and inputs.local_overrides is True
    same["local_overrides"] = True
    assert dataclasses.replace(construct.definition_inputs, **same) == inputs


def test_every_team_is_provisioned_with_the_names_naming_derives(
    embedded: EmbeddedAws, flywheel_config: FlywheelConfig
) -> None:
    """The local half of tests/stacks/test_naming_parity.py: same functions, environment ``local``."""
    from naming import ZONES, Names, pii_key_object

    names = Names(emb.ENV_NAME)
    teams = provision(embedded, flywheel_config, [t.name for t in flywheel_config.teams])
    sm = embedded.client("sagemaker")
    buckets = {b["Name"] for b in embedded.client("s3").list_buckets()["Buckets"]}
    assert {names.bucket(z) for z in ZONES} <= buckets
    for team in flywheel_config.teams:
        resources = teams[team.name]
        assert resources.group_name == names.model_package_group(team.name)
        assert sm.describe_model_package_group(ModelPackageGroupName=names.model_package_group(team.name))
        for template in team.pipelines:
            assert resources.pipeline(template).pipeline_name == names.pipeline(team.name, template)
            assert sm.describe_pipeline(PipelineName=names.pipeline(team.name, template))
        assert resources.pii_key_uri == f"s3://{names.bucket('raw')}/{pii_key_object(team.name)}"


def test_definitions_are_built_once_per_code_sdk_and_inputs(
    churn: emb.TeamResources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the definition cache, WHEN the same template and inputs are provisioned again THEN the SDK build
    is not repeated; account values (sentinels: a fresh embedded AWS has new KMS key ids) still land in the
    output, a changed non-account input or a corrupt entry build again, and the result equals a fresh build."""
    import pipelines.tabular.definition as tabular_definition

    monkeypatch.setenv(emb.DEFINITION_CACHE_ENV, str(tmp_path))
    pipeline = churn.primary
    calls: list[object] = []
    sdk_build = tabular_definition._build_with_sdk

    def counting(inputs: object) -> str:
        calls.append(inputs)
        return sdk_build(inputs)  # type: ignore[arg-type]

    monkeypatch.setattr(tabular_definition, "_build_with_sdk", counting)
    first = emb.cached_definition(pipeline.template, pipeline.inputs)
    assert first == pipeline.definition and len(calls) == 1
    assert emb.cached_definition(pipeline.template, pipeline.inputs) == first and len(calls) == 1  # cached
    new_key = "arn:aws:kms:eu-west-1:123456789012:key/00000000-1111-2222-3333-444444444444"
    other_account = dataclasses.replace(pipeline.inputs, kms_key_arn=new_key)
    rebuilt = emb.cached_definition(pipeline.template, other_account)
    assert len(calls) == 1 and new_key in rebuilt and pipeline.inputs.kms_key_arn not in rebuilt
    other = dataclasses.replace(pipeline.inputs, gate_threshold=0.5)
    assert emb.cached_definition(pipeline.template, other) != first and len(calls) == 2
    for entry in tmp_path.glob("*.json"):
        entry.write_text("{not json", encoding="utf-8")
    assert emb.cached_definition(pipeline.template, pipeline.inputs) == first and len(calls) == 3
    assert not list(tmp_path.glob(".*.tmp"))


def test_transfers_carry_no_flexible_checksum_but_required_ones_stay(
    embedded: EmbeddedAws, churn: emb.TeamResources
) -> None:
    # GIVEN the embedded AWS's S3 client, WHEN it uploads, reads and deletes, THEN neither the upload nor the read
    # computes a CRC32 of the body (botocore's default cost as much as the transfer), while DeleteObjects, which
    # S3 requires a checksum for, still sends one; the object reads back intact
    s3 = embedded.client("s3")
    sent: dict[str, dict[str, str]] = {}

    def record(request: object, **kwargs: object) -> None:
        sent[str(kwargs["event_name"]).rsplit(".", 1)[-1]] = {k.lower(): v for k, v in request.headers.items()}  # type: ignore[attr-defined]

    s3.meta.events.register("before-send.s3", record)
    try:
        body = bytes(range(256)) * 4096
        s3.put_object(Bucket=churn.raw_bucket, Key="checksum-probe/a", Body=body)
        assert s3.get_object(Bucket=churn.raw_bucket, Key="checksum-probe/a")["Body"].read() == body
        s3.delete_objects(Bucket=churn.raw_bucket, Delete={"Objects": [{"Key": "checksum-probe/a"}]})
    finally:
        s3.meta.events.unregister("before-send.s3", record)
    checksum = ("x-amz-checksum-", "x-amz-sdk-checksum-", "x-amz-trailer")  # a header, or a trailer announced
    assert not [h for h in sent["PutObject"] if h.startswith(checksum)]
    assert "x-amz-checksum-mode" not in sent["GetObject"]  # no CRC32 of the body read back either
    assert [h for h in sent["DeleteObjects"] if h.startswith(checksum) or h == "content-md5"]
