"""The ``batch-scoring`` template: settings and schedule validation, step code, the offline definition."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STEP_DIR = REPO / "pipelines" / "batch_scoring"
if str(STEP_DIR) not in sys.path:
    sys.path.insert(0, str(STEP_DIR))

import prepare  # noqa: E402
import summarize  # noqa: E402
from contract import load_contract  # noqa: E402
from features import HmacTokenizer, serving_names  # noqa: E402

from config.loader import ConfigError, load_config  # noqa: E402
from config.models import TeamConfig  # noqa: E402
from flywheel.executor.transform_worker import TransformError, select  # noqa: E402
from pipelines import discover_templates, load_template  # noqa: E402
from pipelines.batch_scoring.template import cron_problems, serving_column_count  # noqa: E402
from pipelines.template import DeploymentValues  # noqa: E402

CONTRACTS = REPO / "config" / "contracts"
FIXTURES = REPO / "tests" / "fixtures" / "data"
KEY = b"batch-scoring-test-key-0123456789abcdef"
SCHEDULE = {"schedule": "cron(0 2 * * ? *)"}


def _team(**overrides: Any) -> dict[str, Any]:
    team = {
        "name": "churn",
        "pipelines": ["tabular", "batch-scoring"],
        "contract": json.loads((CONTRACTS / "churn.json").read_text()),
        "metric_gate": {"metric": "auc", "threshold": 0.7},
        "scoring": dict(SCHEDULE),
    }
    team.update(overrides)
    return team


# -- discovery and settings ----------------------------------------------------------------------------


def test_the_folder_batch_scoring_is_the_template_batch_scoring() -> None:
    assert discover_templates()["batch-scoring"] == STEP_DIR
    template = load_template("batch-scoring")
    assert template.name == "batch-scoring" and template.folder == STEP_DIR
    assert template.access.all_job_kinds == ("Processing", "Transform")
    assert not template.access.registers_models


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 2 * * ? *)",
        "cron(15 6 ? * MON-FRI *)",
        "cron(0/30 8-17 ? * 2-6 *)",
        "cron(0 0 L * ? *)",
        "cron(0 12 ? * 6#3 2026-2030)",
        "cron(5,35 */4 1W JAN,JUL ? *)",
    ],
)
def test_valid_eventbridge_crons_pass(expression: str) -> None:
    assert cron_problems(expression) == []


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 day)", "is not a cron(...) expression; e.g. cron(0 2 * * ? *)"),
        ("cron(0 2 * * *)", "has 5 fields; EventBridge Scheduler needs 6"),
        ("cron(0 24 * * ? *)", "hours: 24 in '24' is outside 0-23"),
        ("cron(0 2 * * * *)", "exactly one of day-of-month ('*') and day-of-week ('*') must be '?'"),
        ("cron(0 2 ? * ? *)", "exactly one of day-of-month ('?') and day-of-week ('?') must be '?'"),
        ("cron(* 2 ? * MON *)", "fires every minute"),
        ("cron(0 2 ? FOO MON *)", "month: 'FOO' in 'FOO' is not a number or one of JAN/FEB"),
        ("cron(0/0 2 * * ? *)", "minutes: increment '0' in '0/0' is not a positive number"),
        ("cron(0 2 ? * 2#6 *)", "the n-th weekday after '#' must be 1-5"),
        ("cron(0 ? * * ? *)", "hours: '?' is allowed only in day-of-month/day-of-week"),
    ],
)
def test_bad_crons_are_refused_naming_the_field(expression: str, message: str) -> None:
    assert any(message in problem for problem in cron_problems(expression)), cron_problems(expression)


def test_a_team_with_a_bad_schedule_or_settings_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"scoring\.schedule: 'cron\(0 2 \* \* \*\)' has 5 fields"):
        TeamConfig.model_validate(_team(scoring={"schedule": "cron(0 2 * * *)"}))
    with pytest.raises(ValueError, match=r"scoring\.timezone: 'Mars/Olympus' is not an IANA time zone"):
        TeamConfig.model_validate(_team(scoring={**SCHEDULE, "timezone": "Mars/Olympus"}))
    with pytest.raises(ValueError, match=r"scoring: Field required"):
        TeamConfig.model_validate(_team(scoring=None))
    with pytest.raises(ValueError, match=r"scoring\.instance_count: Input should be less than or equal to 10"):
        TeamConfig.model_validate(_team(scoring={**SCHEDULE, "instance_count": 11}))
    with pytest.raises(ValueError, match=r"scoring\.instance_type: 'm5\.large' is not a SageMaker instance type"):
        TeamConfig.model_validate(_team(scoring={**SCHEDULE, "instance_type": "m5.large"}))
    with pytest.raises(ValueError, match=r"scoring\.cron: Extra inputs are not permitted"):
        TeamConfig.model_validate(_team(scoring={**SCHEDULE, "cron": "x"}))
    contract = json.loads((CONTRACTS / "churn.json").read_text())
    for column in contract["columns"]:
        if column["role"] == "id":
            column["role"] = "ignore"
    with pytest.raises(ValueError, match=r"contract: batch-scoring keys each prediction by the token of exactly one"):
        TeamConfig.model_validate(_team(contract=contract))
    with pytest.raises(ValueError, match=r"scoring: set, but none of the team's pipelines reads it"):
        TeamConfig.model_validate(_team(pipelines=["tabular"]))
    team = TeamConfig.model_validate(_team())
    settings = team.template_settings("batch-scoring")
    assert team.template("batch-scoring").schedule(settings).expression == "cron(0 2 * * ? *)"


def test_a_config_file_with_a_bad_schedule_names_the_file_team_and_field(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    teams = (config / "teams.yaml").read_text()
    assert 'schedule: "cron(0 2 * * ? *)"' in teams
    (config / "teams.yaml").write_text(teams.replace('schedule: "cron(0 2 * * ? *)"', 'schedule: "cron(0 25 * * ? *)"'))
    with pytest.raises(
        ConfigError, match=r"config/teams\.yaml: teams\[0\]: scoring\.schedule: hours: 25 in '25' is outside"
    ):
        load_config(config)


def test_the_serving_column_count_is_the_models_request_width() -> None:
    for name in ("churn", "diagnostics", "diabetes", "wine"):
        contract = load_contract(CONTRACTS / f"{name}.json")
        assert serving_column_count(contract) == len(serving_names(contract)), name


# -- step code ---------------------------------------------------------------------------------------------


def _write_key(tmp_path: Path) -> Path:
    key = tmp_path / "pii.key"
    key.write_bytes(KEY)
    return key


def test_prepare_tokenizes_ids_like_tabular_and_drops_every_identifier(tmp_path: Path) -> None:
    contract = load_contract(CONTRACTS / "churn.json")
    raw = tmp_path / "raw" / "batch-1"
    raw.mkdir(parents=True)
    rows = list(csv.DictReader((FIXTURES / "churn.csv").open()))[:40]
    rows[3]["customer_id"] = ""  # no id: cannot be keyed
    rows[5]["date_of_birth"] = "not-a-date"  # scored as missing
    with (raw / "part.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (raw / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    allowed = "s3://raw/churn/scoring/incoming/"
    code = prepare.main(
        ["--contract", str(CONTRACTS / "churn.json"), "--input-dir", str(tmp_path / "raw"), "--output-dir", str(out),
         "--pii-key-file", str(_write_key(tmp_path)), "--input-uri", allowed + "batch-1/",
         "--allowed-input-prefix", allowed]
    )  # fmt: skip
    assert code == 0
    status = json.loads((out / "manifest" / "status.json").read_text())
    assert status["passed"] and status["rows_in"] == 40 and status["rows_prepared"] == 39
    assert status["rows_rejected"] == 1 and status["rejected"]["missing id"] == 1
    assert status["rejected"]["invalid date_of_birth (scored as missing)"] == 1
    lines = (out / "scoring-input" / "part-00000.csv").read_text().splitlines()
    assert len(lines) == 39
    tokenizer = HmacTokenizer(KEY)
    expected_tokens = [tokenizer.token(r["customer_id"]) for r in rows if r["customer_id"]]
    parsed = [next(csv.reader([line])) for line in lines]
    assert [p[0] for p in parsed] == expected_tokens  # the tabular template's tokens, in row order
    assert all(len(p) == 1 + len(serving_names(contract)) for p in parsed)
    text = "\n".join(lines)
    for row in rows:
        for column in ("customer_id", "name", "email", "phone", "date_of_birth", "postcode"):
            if row[column]:
                assert row[column] not in text, column  # no raw identifier or quasi-identifier leaves
    assert "30-39" in text or "40-49" in text  # generalized age bands instead of dates of birth


def test_prepare_rejects_a_batch_missing_model_columns_and_refuses_foreign_prefixes(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text("customer_id,tenure_months\nC1,3\n")
    (raw / "b.json").write_text("{}")
    out = tmp_path / "out"
    contract = load_contract(CONTRACTS / "churn.json")
    status = prepare.prepare(raw, out, contract, KEY)
    assert not status["passed"] and status["rows_prepared"] == 0
    assert "a.csv: missing column(s) date_of_birth, postcode, signup_date, contract_type" in status["summary"]
    assert "b.json: not a .csv or .parquet file" in status["summary"]
    assert list((out / "scoring-input").iterdir()) == []  # nothing of a rejected batch reaches the model
    key = _write_key(tmp_path)
    for uri in ("s3://raw/churn/incoming/b/", "s3://raw/churn/scoring/incoming/../_keys/", "s3://raw/other/x/"):
        code = prepare.main(
            ["--contract", str(CONTRACTS / "churn.json"), "--input-dir", str(raw), "--output-dir", str(out),
             "--pii-key-file", str(key), "--input-uri", uri, "--allowed-input-prefix", "s3://raw/churn/scoring/incoming/"]
        )  # fmt: skip
        assert code == 2, uri


def test_summarize_passes_only_when_every_prepared_row_has_one_tokenized_prediction(tmp_path: Path) -> None:
    status = {"passed": True, "rows_in": 3, "rows_prepared": 2, "rows_rejected": 1, "rejected": {"missing id": 1}}
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    token = "0123456789abcdef0123456789abcdef"
    (predictions / "part-00000.csv.out").write_text(f"{token},0.9,1\n{token},0.1,0\n")
    good = summarize.summarize(status, predictions, model_package_arn="arn:p/1", input_uri="s3://b/")
    assert good["passed"] and good["rows_scored"] == 2
    assert good["summary"] == "scored 2 of 3 row(s); 1 row(s) not scored (missing id: 1)"
    (predictions / "part-00000.csv.out").write_text(f"{token},0.9,1\n")
    short = summarize.summarize(status, predictions, model_package_arn="", input_uri="")
    assert not short["passed"] and short["summary"] == "1 prediction(s) for 2 prepared row(s)"
    (predictions / "part-00000.csv.out").write_text(f"{token},0.9,1\nC00042,0.1,0\n")
    leaked = summarize.summarize(status, predictions, model_package_arn="", input_uri="")
    assert not leaked["passed"] and "1 prediction line(s) do not start with an id token" in leaked["summary"]


def test_transform_filters_select_csv_fields_as_sagemaker_documents() -> None:
    fields = [str(i) for i in range(6)]
    assert select(fields, "$[1:]") == fields[1:]
    assert select(fields, "$[0,4:]") == ["0", "4", "5"]
    assert select(fields, "$[0,-1]") == ["0", "5"]
    assert select(fields, "$") == fields and select(fields, None) == fields
    with pytest.raises(TransformError, match="index 9 is out of range for a record of 6 field"):
        select(fields, "$[0,9]")
    with pytest.raises(TransformError, match=r"only \$, \$\[i\], \$\[i,j\] and \$\[a:b\] are supported"):
        select(fields, "$.features")


# -- the definition ------------------------------------------------------------------------------------------


def test_the_definition_builds_offline_with_encrypted_isolated_tagged_jobs() -> None:
    template = load_template("batch-scoring")
    team = TeamConfig.model_validate(_team())
    settings = team.template_settings("batch-scoring")
    values = DeploymentValues(
        pipeline_name="flywheel-dev-churn-batch-scoring",
        region="eu-west-1",
        role_arn="arn:aws:iam::111111111111:role/flywheel/dev/pipeline/p",
        role_arns={k: f"arn:aws:iam::111111111111:role/flywheel/dev/{k}/r" for k in template.access.role_kinds},
        kms_key_arn="arn:aws:kms:eu-west-1:111111111111:key/job",
        subnet_ids=("subnet-0a", "subnet-0b"),
        security_group_ids=("sg-0a",),
        buckets={"raw": "raw-b", "features": "feat-b", "reports": "rep-b", "artifacts": "art-b"},
        source_uri="s3://assets/abc.gz",
        source_sha256="a" * 64,
        file_uris={"contract": "s3://assets/def.json"},
        model_package_group_name="flywheel-dev-churn",
    )
    _, body = template.definition("churn", settings, values)
    assert body == template.definition("churn", settings, values)[1]  # deterministic
    doc = json.loads(body)
    assert [p["Name"] for p in doc["Parameters"]] == list(template.steps.parameters)
    prepare_step, check = doc["Steps"]
    assert prepare_step["Arguments"]["RoleArn"].endswith("/preprocessing/r")
    score, summary, row_check = check["Arguments"]["IfSteps"]
    assert score["Type"] == "Transform"
    args = score["Arguments"]
    assert args["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,15:]"}
    assert args["TransformOutput"]["KmsKeyId"] == values.kms_key_arn
    assert args["TransformResources"]["VolumeKmsKeyId"] == values.kms_key_arn
    assert args["TransformOutput"]["S3OutputPath"]["Std:Join"]["Values"][1] == "feat-b"
    assert {"Key": "flywheel:team", "Value": "churn"} in args["Tags"]
    assert args["ModelName"] == {"Get": "Parameters.ModelName"}
    # bench_serving's batch-transform tier sends what this job sends: its figures are this job's requests
    from bench import bench_serving

    assert args["TransformOutput"]["Accept"] == bench_serving.TRANSFORM_ACCEPT
    assert args["TransformInput"]["ContentType"] == "text/csv"
    assert args["MaxPayloadInMB"] == bench_serving.TRANSFORM_PAYLOAD_BYTES // 1_000_000
    for job in (prepare_step, summary):
        a = job["Arguments"]
        assert a["NetworkConfig"]["EnableNetworkIsolation"] is True
        assert a["NetworkConfig"]["VpcConfig"]["Subnets"] == ["subnet-0a", "subnet-0b"]
        assert a["ProcessingOutputConfig"]["KmsKeyId"] == values.kms_key_arn
        assert a["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == values.kms_key_arn
        assert values.role_arn not in json.dumps(a)  # no job runs as the pipeline's own role
    arguments = prepare_step["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--allowed-input-prefix") + 1] == "s3://raw-b/churn/scoring/incoming/"
    assert summary["Arguments"]["RoleArn"].endswith("/reporting/r")
    assert row_check["Arguments"]["ElseSteps"][0]["Name"] == "ScoringFailed"
