"""A hand-built :class:`flywheel.diagram.App` for the diagram tests: a few resources, each rule of the graph."""

from __future__ import annotations

from typing import Any

from flywheel.diagram import App, Resource

ACCOUNT = "111111111111"
LAKE, TEAM = "Flywheel-dev-DataLake", "Flywheel-dev-Team-t"


def _res(stack: str, lid: str, type_: str, props: dict[str, Any], path: tuple[str, ...]) -> Resource:
    return Resource(
        key=(stack, lid), type=type_, props=props, path=path, env="dev", account=ACCOUNT, region="eu-west-1"
    )


def small_app(reverse: bool = False) -> App:
    """A raw bucket in the lake, and in a team stack: a function (role, policy) that an S3 rule triggers, which
    reads the bucket's prefix, starts a pipeline by its ARN and updates an endpoint made at run time; a
    person's role with a policy."""
    bucket = _res(LAKE, "RawBucket", "AWS::S3::Bucket", {}, ("Lake", "Raw", "Bucket"))
    role = _res(TEAM, "FnRole", "AWS::IAM::Role", _trust({"Service": "lambda.amazonaws.com"}), ("Team", "Fn", "Role"))
    person = _res(TEAM, "PersonRole", "AWS::IAM::Role", _trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}), ("Team", "P"))
    read_raw = {
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"],
        "Resource": {"Fn::Join": ["", ["arn:aws:s3:::", {"Fn::ImportValue": "raw-bucket"}, "/t/incoming/*"]]},
    }
    start = {
        "Effect": "Allow",
        "Action": "sagemaker:StartPipelineExecution",
        "Resource": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:pipeline/flywheel-dev-t-tabular",
    }
    endpoint = {
        "Effect": "Allow",
        "Action": "sagemaker:UpdateEndpoint",
        "Resource": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/flywheel-dev-t",
    }
    resources = [
        bucket,
        role,
        person,
        _res(TEAM, "FnPolicy", "AWS::IAM::Policy", _policy("FnRole", read_raw, start, endpoint), ("Team", "Fn", "P")),
        _res(TEAM, "PersonPolicy", "AWS::IAM::Policy", _policy("PersonRole", read_raw), ("Team", "PP")),
        _res(
            TEAM,
            "Fn",
            "AWS::Lambda::Function",
            {"Role": {"Fn::GetAtt": ["FnRole", "Arn"]}, "Handler": "lambdas.x.handler.lambda_handler"},
            ("Team", "Fn", "Function"),
        ),
        _res(
            TEAM,
            "Rule",
            "AWS::Events::Rule",
            {
                "EventPattern": {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {"bucket": {"name": [{"Fn::ImportValue": "raw-bucket"}]}},
                },
                "Targets": [{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "Id": "T"}],
            },
            ("Team", "Rule"),
        ),
        _res(TEAM, "Pipe", "AWS::SageMaker::Pipeline", {"PipelineName": "flywheel-dev-t-tabular"}, ("Team", "Pipe")),
    ]
    if reverse:
        resources.reverse()
    return App(
        resources={r.key: r for r in resources},
        stacks={LAKE: "dev", TEAM: "dev"},
        stack_ids={LAKE: "DataLake", TEAM: "Team-t"},
        exports={"raw-bucket": (LAKE, "RawBucket")},
        outputs={},
        environments=("dev",),
        accounts={"dev": (ACCOUNT, "eu-west-1")},
    )


def _trust(principal: dict[str, str]) -> dict[str, Any]:
    return {"AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": principal}]}}


def _policy(role: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {"Roles": [{"Ref": role}], "PolicyDocument": {"Statement": list(statements)}}
