"""Every physical name the synthesized stages carry is the one ``naming`` derives, for every environment
and team: the local runtime provisions with the same functions (``Names("local")``, see
tests/flywheel/test_embedded.py), so a name can never differ between the deployed and the local loop."""

from __future__ import annotations

from typing import Any

import naming
from config.loader import load_config
from naming import Names

TEAMS = load_config().teams


def _resources(template: Any, kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template.to_json()["Resources"].values() if r["Type"] == kind]


def test_pipelines_registries_and_endpoints_carry_the_names_naming_derives(stages) -> None:
    checked = 0
    for env_name, stage in stages.items():
        names = Names(stage.environment.name)
        for team in TEAMS:
            template = stage.teams[team.name]
            pipelines = {p["PipelineName"] for p in _resources(template, "AWS::SageMaker::Pipeline")}
            assert pipelines == {names.pipeline(team.name, t) for t in team.pipelines}, (env_name, team.name)
            groups = {g["ModelPackageGroupName"] for g in _resources(template, "AWS::SageMaker::ModelPackageGroup")}
            assert groups == {names.model_package_group(team.name)}, (env_name, team.name)
            variables = [
                f.get("Environment", {}).get("Variables", {}) for f in _resources(template, "AWS::Lambda::Function")
            ]
            endpoints = {v["ENDPOINT_NAME"] for v in variables if "ENDPOINT_NAME" in v}
            assert endpoints == {names.endpoint(team.name)}, (env_name, team.name)
            pipeline_vars = {v["PIPELINE_NAME"] for v in variables if "PIPELINE_NAME" in v}
            assert pipeline_vars <= pipelines and pipeline_vars, (env_name, team.name)
            checked += 1
    assert checked == len(stages) * len(TEAMS) and checked >= 6


def test_zone_databases_and_bucket_exports_carry_the_names_naming_derives(stages) -> None:
    for env_name, stage in stages.items():
        names = Names(stage.environment.name)
        lake = stage.data_lake.to_json()
        databases = {d["DatabaseInput"]["Name"] for d in _resources(stage.data_lake, "AWS::Glue::Database")}
        assert databases == {names.glue_database(z) for z in naming.ZONES}, env_name
        exports = {o["Export"]["Name"] for o in lake.get("Outputs", {}).values() if "Export" in o}
        assert {names.bucket_export(z) for z in naming.ZONES} <= exports, env_name


def test_the_arrival_rule_matches_the_incoming_prefix_naming_derives(stages) -> None:
    for env_name, stage in stages.items():
        for team in TEAMS:
            rules = _resources(stage.teams[team.name], "AWS::Events::Rule")
            prefixes = [
                key["prefix"]
                for r in rules
                if r.get("EventPattern", {}).get("detail-type") == ["Object Created"]
                for key in r["EventPattern"]["detail"]["object"]["key"]
            ]
            # data arrival (landed batches) and erasure (erasure requests), each from naming
            expected = sorted([naming.incoming_prefix(team.name), naming.erasure_request_prefix(team.name)])
            assert sorted(prefixes) == expected, (env_name, team.name)
