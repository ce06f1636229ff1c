"""config/toolchain.yaml: validated once, each bad value rejected with the file, field and problem named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from config.loader import ConfigError, load_config, load_toolchain
from config.models import branch_problem

CONNECTION = "arn:aws:codeconnections:eu-west-1:444444444444:connection/00000000-0000-4000-8000-000000000000"
VALID = {
    "account": "444444444444",
    "region": "eu-west-1",
    "source": {"kind": "codeconnections", "provider": "github", "connection_arn": CONNECTION,
               "repository": "example-org/flywheel", "branch": "main"},
    "github": {"repository": "example-org/flywheel", "environment": "toolchain"},
}  # fmt: skip


@pytest.fixture(scope="module")
def config():
    return load_config()


def _load(tmp_path: Path, config, section) -> object:
    (tmp_path / "toolchain.yaml").write_text(yaml.safe_dump({"toolchain": section}))
    return load_toolchain(tmp_path, config=config)


def _with(path: str, value) -> dict:
    section = copy.deepcopy(VALID)
    *parents, key = path.split(".")
    target = section
    for p in parents:
        target = target[p]
    if value is _DROP:
        del target[key]
    else:
        target[key] = value
    return section


_DROP = object()


def test_shipped_toolchain_config_is_valid(config):
    toolchain = load_toolchain(config=config)
    assert toolchain.stages == ("dev", "staging", "prod")
    assert toolchain.source.kind == "codeconnections"
    assert toolchain.github is not None
    assert toolchain.github.subject == "repo:example-org/flywheel:environment:toolchain"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # the four the issue names
        ("source.connection_arn", _DROP,
         r"toolchain\.source\.codeconnections: .*connection_arn: a git source \(github\) "
         r"needs the ARN of an AWS CodeConnections connection.*complete the handshake"),
        ("source.branch", "feature..x",
         r"toolchain\.source\.codeconnections\.branch: 'feature\.\.x' is not a valid git "
         r"branch name: it may not contain '\.\.'"),
        ("source.branch", "my branch", r"is not a valid git branch name: it may not contain spaces"),
        ("source.provider", "codecommit", r"toolchain\.source\.codeconnections\.provider: unknown git provider "
         r"'codecommit'; choose from github, github-enterprise, gitlab, gitlab-self-managed, bitbucket"),
        ("account", "44444444444", r"toolchain\.account: '44444444444' is not an AWS account id \(exactly 12 digits"),
        ("account", 444444444444, r"toolchain\.account: Input should be a valid string"),
        # and the rest
        ("source.connection_arn", "arn:aws:codecommit:eu-west-1:444444444444:repo", r"is not a connection ARN"),
        ("source.repository", "org/*", r"'org/\*' is not a repository path"),
        ("source.kind", "codecommit", r"toolchain\.source: Input tag 'codecommit' found using 'kind' does not match"),
        ("region", "mars-1", r"toolchain\.region: unknown region 'mars-1'"),
        ("github.repository", "org/*", r"toolchain\.github\.repository: 'org/\*' is not a GitHub repository"),
        ("github.branch", "main", r"set exactly one of branch .* or environment"),
        ("stages", ["dev", "dev"], r"toolchain\.stages: .*a stage is listed twice"),
        ("log_retention_days", 10, r"toolchain\.log_retention_days: 10 is not a CloudWatch Logs retention"),
    ],
)  # fmt: skip
def test_bad_values_name_file_field_and_problem(tmp_path, config, path, value, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        _load(tmp_path, config, _with(path, value))
    assert str(tmp_path / "toolchain.yaml") in str(err.value)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({**VALID, "stages": ["dev", "qa"]},
         r"toolchain\.stages: unknown environment\(s\) \['qa'\]; known: dev, staging, prod"),
        ({**VALID, "smoke_test": {"environment": "qa"}}, r"smoke_test\.environment: 'qa' is not one of the stages"),
        ({**VALID, "retrain": {"opt_out_teams": ["nobody"]}},
         r"retrain\.opt_out_teams: unknown team\(s\) \['nobody'\]"),
        ({**VALID, "region": "eu-west-2"},
         r"stages: \['dev', 'staging', 'prod'\] are not in the toolchain region eu-west-2"),
    ],
)  # fmt: skip
def test_cross_file_references_are_checked(tmp_path, config, section, expected):
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, config, section)


def test_s3_source_needs_no_connection_and_checks_its_key(tmp_path, config):
    toolchain = _load(tmp_path, config, {**VALID, "source": {"kind": "s3"}})
    assert toolchain.source.kind == "s3" and toolchain.source.object_key == "flywheel/source.zip"
    expected = r"toolchain\.source\.s3\.object_key: '\.\./x\.zip' is not a source object key"
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, config, {**VALID, "source": {"kind": "s3", "object_key": "../x.zip"}})


def test_branch_pin_gives_the_ref_subject(tmp_path, config):
    toolchain = _load(tmp_path, config, {**VALID, "github": {"repository": "o/r", "branch": "release/1.0"}})
    assert toolchain.github.subject == "repo:o/r:ref:refs/heads/release/1.0"


@pytest.mark.parametrize("name", ["main", "release/1.0", "feature/JIRA-12_x", "v2"])
def test_valid_branch_names(name):
    assert branch_problem(name) is None


@pytest.mark.parametrize("name", ["", "-x", "/x", "x/", "x.lock", "a..b", "a//b", "a@{b", "a~b", "a^b", "a:b", "a?b",
                                  "a*b", "a[b", "a\\b", "a/.b", "@", "a\tb"])  # fmt: skip
def test_invalid_branch_names(name):
    assert branch_problem(name)


def test_missing_or_malformed_file(tmp_path, config):
    with pytest.raises(ConfigError, match=r"toolchain\.yaml: file not found \(the toolchain needs it"):
        load_toolchain(tmp_path, config=config)
    (tmp_path / "toolchain.yaml").write_text("toolchain: [1, 2]")
    with pytest.raises(ConfigError, match=r"expected a top-level 'toolchain:' mapping"):
        load_toolchain(tmp_path, config=config)
