"""The registry path (approve, reject) provisions a team without its pipelines; they are made on first use.

Its own module: the embedded AWS is one moto per process, and test_embedded's module-scoped one holds every
team's pipelines while it lives.
"""

from __future__ import annotations

from pathlib import Path

from config.loader import load_config
from flywheel import embedded as emb
from flywheel.embedded import NAMES, EmbeddedAws


def _pipeline_names(aws: EmbeddedAws) -> set[str]:
    return {p["PipelineName"] for p in aws.client("sagemaker").list_pipelines()["PipelineSummaries"]}


def test_deferred_pipelines_are_created_once_on_first_use() -> None:
    flywheel_config = load_config()
    with emb.in_process() as aws:
        assert _pipeline_names(aws) == set()  # a fresh embedded AWS
        # GIVEN a team provisioned for the registry path (pipelines=False)
        res = emb.provision_team(aws, flywheel_config.team("churn"), pipelines=False)
        # THEN its registry, role and PII key exist but no pipeline yet
        aws.client("sagemaker").describe_model_package_group(ModelPackageGroupName=res.group_name)
        assert _pipeline_names(aws) == set()
        # WHEN a pipeline is first used, THEN every template's pipeline is created, once
        assert res.primary.pipeline_name == NAMES.pipeline("churn", "tabular")
        assert _pipeline_names(aws) == {p.pipeline_name for p in res.pipelines.values()}
        assert set(res.pipelines) == set(flywheel_config.team("churn").pipelines)
        assert res.pipelines is res.pipelines


def test_rejecting_in_a_fresh_runtime_creates_no_pipeline(tmp_path: Path) -> None:
    """approve / reject go through the registry path: provisioned without the team's pipelines."""
    from flywheel.runtime import LocalRuntime
    from flywheel.state import StateStore

    with emb.in_process() as aws:
        assert _pipeline_names(aws) == set()  # a fresh embedded AWS
        rt = LocalRuntime(aws, StateStore(tmp_path / "state"))
        rt.provision(["churn"], pipelines=False)
        package = aws.client("sagemaker").create_model_package(
            ModelPackageGroupName=NAMES.model_package_group("churn"), ModelApprovalStatus="PendingManualApproval"
        )
        fresh = LocalRuntime(aws, StateStore(tmp_path / "state"))  # a second command on the same embedded AWS
        result = fresh.set_approval(package["ModelPackageArn"], "Rejected", "not good enough")
        assert (result.team, result.action) == ("churn", "ignored")
        status = aws.client("sagemaker").describe_model_package(ModelPackageName=package["ModelPackageArn"])
        assert status["ModelApprovalStatus"] == "Rejected"
        assert _pipeline_names(aws) == set()
        # A command that runs the pipeline still gets it.
        assert fresh.target("churn").pipeline_name in _pipeline_names(aws)
