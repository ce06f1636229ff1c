"""The evaluator the boundary tests rely on: decision logic, wildcards, every operator, intrinsics."""

from __future__ import annotations

import pytest

from tests.security.iam_eval import (
    Decision,
    Request,
    Templates,
    UnsupportedPolicy,
    arn_match,
    conditions_match,
    evaluate,
    evaluate_with_boundary,
    wildcard_match,
)


def doc(*stmts):
    return {"Version": "2012-10-17", "Statement": list(stmts)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


BUCKET_OBJ = "arn:aws:s3:::lake/churn/incoming/b1/data.csv"


# Decisions ----------------------------------------------------------------------------------------------


def test_allow_and_implicit_deny():
    policy = doc(allow("s3:GetObject", "arn:aws:s3:::lake/churn/*"))
    assert evaluate([policy], Request("s3:GetObject", BUCKET_OBJ)) is Decision.ALLOW
    assert evaluate([policy], Request("s3:PutObject", BUCKET_OBJ)) is Decision.IMPLICIT_DENY
    assert evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::lake/other/x")) is Decision.IMPLICIT_DENY
    assert evaluate([], Request("s3:GetObject", BUCKET_OBJ)) is Decision.IMPLICIT_DENY


def test_explicit_deny_wins_in_any_order():
    allow_all = doc(allow("*"))
    no_delete = doc(deny("s3:DeleteObjectVersion"))
    for order in ([allow_all, no_delete], [no_delete, allow_all]):
        assert evaluate(order, Request("s3:DeleteObjectVersion", BUCKET_OBJ)) is Decision.EXPLICIT_DENY
        assert evaluate(order, Request("s3:GetObject", BUCKET_OBJ)) is Decision.ALLOW


def test_boundary_intersection():
    identity = [doc(allow(["s3:GetObject", "iam:PassRole"]))]
    boundary = [doc(allow(["s3:*", "kms:Decrypt"]))]
    assert evaluate_with_boundary(identity, boundary, Request("s3:GetObject", BUCKET_OBJ)).allowed
    # identity allows, boundary does not
    assert evaluate_with_boundary(identity, boundary, Request("iam:PassRole", "arn:aws:iam::1:role/x")) is (
        Decision.IMPLICIT_DENY
    )
    # boundary allows, identity does not: a boundary never grants
    assert evaluate_with_boundary(identity, boundary, Request("kms:Decrypt", "arn:aws:kms:r:1:key/k")) is (
        Decision.IMPLICIT_DENY
    )
    # a deny in either wins
    assert evaluate_with_boundary([doc(allow("*"), deny("s3:GetObject"))], boundary, Request("s3:GetObject")) is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate_with_boundary(identity, [doc(allow("*"), deny("s3:Get*"))], Request("s3:GetObject")) is (
        Decision.EXPLICIT_DENY
    )
    # no boundary: identity alone
    assert evaluate_with_boundary(identity, None, Request("iam:PassRole", "arn:aws:iam::1:role/x")).allowed


def test_not_action_and_not_resource():
    policy = doc({"Effect": "Deny", "NotAction": ["s3:GetObject"], "Resource": "*"}, allow("*"))
    assert evaluate([policy], Request("s3:GetObject", BUCKET_OBJ)).allowed
    assert evaluate([policy], Request("s3:PutObject", BUCKET_OBJ)) is Decision.EXPLICIT_DENY
    policy = doc({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::lake/_keys/*"})
    assert evaluate([policy], Request("s3:GetObject", BUCKET_OBJ)).allowed
    assert not evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::lake/_keys/k")).allowed


def test_actions_ignore_case_resources_do_not():
    policy = doc(allow("S3:getobject", "arn:aws:s3:::Lake/*"))
    assert evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::Lake/x")).allowed
    assert not evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::lake/x")).allowed


def test_wildcards():
    assert wildcard_match("s3:Get*", "s3:GetObjectVersion")
    assert wildcard_match("a?c", "abc") and not wildcard_match("a?c", "abbc")
    assert wildcard_match("churn/*", "churn/incoming/x")  # * crosses "/"
    assert not wildcard_match("churn/*", "churnx/incoming")
    assert not wildcard_match("a.c", "abc")  # regex characters are literal
    assert arn_match("arn:aws:ecr:eu-west-1:*:repository/sagemaker-*", "arn:aws:ecr:eu-west-1:1:repository/sagemaker-x")
    assert not arn_match(
        "arn:aws:ecr:eu-west-1:*:repository/sagemaker-*", "arn:aws:ecr:us-east-1:1:repository/sagemaker-x"
    )
    # a wildcard does not span ARN segments
    assert not arn_match("arn:aws:iam::1:role/*", "arn:aws:iam::2:role/x")
    assert arn_match("arn:aws:logs:r:1:log-group:/flywheel/*", "arn:aws:logs:r:1:log-group:/flywheel/a:log-stream:b")
    assert not arn_match("arn:aws:s3:::b/*", "not-an-arn")


# Condition operators ------------------------------------------------------------------------------------

CASES = [
    # (operator, key, policy value, context, expected)
    ("StringEquals", "k", "a", {"k": "a"}, True),
    ("StringEquals", "k", "a", {"k": "b"}, False),
    ("StringEquals", "k", ["a", "b"], {"k": "b"}, True),
    ("StringEquals", "k", "a", {}, False),
    ("StringEquals", "K", "a", {"k": "a"}, True),  # keys are case-insensitive
    ("StringEquals", "k", "A", {"k": "a"}, False),  # values are not
    ("StringEqualsIgnoreCase", "k", "A", {"k": "a"}, True),
    ("StringNotEquals", "k", "a", {"k": "b"}, True),
    ("StringNotEquals", "k", ["a", "b"], {"k": "b"}, False),
    ("StringNotEquals", "k", "a", {}, True),  # negated operators match a missing key
    ("StringLike", "k", "pre*", {"k": "prefix"}, True),
    ("StringLike", "k", "pre?", {"k": "prefix"}, False),
    ("StringLike", "k", "pre*", {}, False),
    ("StringNotLike", "k", "pre*", {"k": "other"}, True),
    ("StringNotLike", "k", "pre*", {"k": "prefix"}, False),
    ("StringNotLike", "k", "pre*", {}, True),
    ("ArnLike", "k", "arn:aws:iam::1:role/flywheel/*", {"k": "arn:aws:iam::1:role/flywheel/dev/r"}, True),
    ("ArnLike", "k", "arn:aws:iam::1:role/flywheel/*", {"k": "arn:aws:iam::2:role/flywheel/dev/r"}, False),
    ("ArnEquals", "k", "arn:aws:ec2:r:1:vpc/vpc-1", {"k": "arn:aws:ec2:r:1:vpc/vpc-1"}, True),
    ("ArnEquals", "k", "arn:aws:ec2:r:1:vpc/vpc-1", {"k": "arn:aws:ec2:r:1:vpc/vpc-2"}, False),
    ("ArnNotLike", "k", "arn:aws:iam::1:role/*", {"k": "arn:aws:iam::2:role/x"}, True),
    ("ArnNotLike", "k", "arn:aws:iam::1:role/*", {"k": "arn:aws:iam::1:role/x"}, False),
    ("ArnNotEquals", "k", "arn:aws:iam::1:role/x", {"k": "arn:aws:iam::1:role/y"}, True),
    ("Bool", "k", "true", {"k": True}, True),
    ("Bool", "k", "true", {"k": "True"}, True),
    ("Bool", "k", "true", {"k": False}, False),
    ("Bool", "k", "false", {}, False),
    ("BoolIfExists", "k", "false", {}, True),
    ("BoolIfExists", "k", "false", {"k": True}, False),
    ("BoolIfExists", "k", "false", {"k": False}, True),
    ("Null", "k", "true", {}, True),
    ("Null", "k", "true", {"k": "v"}, False),
    ("Null", "k", "false", {"k": "v"}, True),
    ("Null", "k", "false", {}, False),
    ("Null", "k", "true", {"k": ["subnet-1"]}, False),  # Null works on multi-valued keys
    ("NumericLessThan", "k", "10", {"k": 9}, True),
    ("NumericLessThan", "k", "10", {"k": "10"}, False),
    ("NumericLessThanEquals", "k", "10", {"k": "10"}, True),
    ("NumericGreaterThan", "k", "10", {"k": 11}, True),
    ("NumericGreaterThan", "k", "10", {"k": 10}, False),
    ("NumericGreaterThanEquals", "k", "10", {"k": 10}, True),
    ("NumericEquals", "k", "3", {"k": "3"}, True),
    ("NumericNotEquals", "k", "3", {"k": "4"}, True),
    ("NumericLessThan", "k", "10", {}, False),
    ("StringEqualsIfExists", "k", "a", {}, True),
    ("StringEqualsIfExists", "k", "a", {"k": "b"}, False),
    ("StringNotEqualsIfExists", "k", "a", {"k": "a"}, False),
    ("ArnLikeIfExists", "k", "arn:aws:s3:::b", {}, True),
    ("NumericLessThanIfExists", "k", "5", {"k": 6}, False),
    ("ForAllValues:StringEquals", "k", ["a", "b"], {"k": ["a", "b"]}, True),
    ("ForAllValues:StringEquals", "k", ["a", "b"], {"k": ["a", "c"]}, False),
    ("ForAllValues:StringEquals", "k", ["a"], {}, True),  # vacuously true: pair with Null
    ("ForAnyValue:StringEquals", "k", ["a"], {"k": ["c", "a"]}, True),
    ("ForAnyValue:StringEquals", "k", ["a"], {"k": ["c"]}, False),
    ("ForAnyValue:StringEquals", "k", ["a"], {}, False),
    ("ForAnyValue:StringLike", "k", ["flywheel:*"], {"k": ["x", "flywheel:team"]}, True),
    ("ForAllValues:StringNotLike", "k", ["aws:*"], {"k": ["team"]}, True),
]


@pytest.mark.parametrize(("operator", "key", "value", "context", "expected"), CASES)
def test_condition_operators(operator, key, value, context, expected):
    assert conditions_match({operator: {key: value}}, context) is expected


def test_all_keys_and_operators_must_match():
    condition = {"StringEquals": {"a": "1", "b": "2"}, "Bool": {"c": "true"}}
    assert conditions_match(condition, {"a": "1", "b": "2", "c": True})
    assert not conditions_match(condition, {"a": "1", "b": "2", "c": False})
    assert not conditions_match(condition, {"a": "1", "c": True})


@pytest.mark.parametrize("operator", ["DateLessThan", "IpAddress", "StringMatches", "BinaryEquals", "Foo"])
def test_unknown_operator_is_an_error_not_an_allow(operator):
    policy = doc(allow("s3:GetObject", Condition={operator: {"k": "v"}}))
    with pytest.raises(UnsupportedPolicy):
        evaluate([policy], Request("s3:GetObject", BUCKET_OBJ, {"k": "v"}))


def test_multivalued_key_needs_a_set_qualifier():
    with pytest.raises(UnsupportedPolicy, match="multi-valued"):
        conditions_match({"StringEquals": {"k": "a"}}, {"k": ["a"]})


def test_deny_with_unmet_condition_does_not_apply():
    policy = doc(
        allow("sagemaker:*"),
        deny("sagemaker:CreateTrainingJob", Condition={"Null": {"sagemaker:VolumeKmsKey": "true"}}),
    )
    assert evaluate([policy], Request("sagemaker:CreateTrainingJob", context={"sagemaker:VolumeKmsKey": "k"})).allowed
    assert evaluate([policy], Request("sagemaker:CreateTrainingJob")) is Decision.EXPLICIT_DENY


def test_principals_in_trust_policies():
    trust = doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "1"}},
        }
    )
    lam = {"Service": "lambda.amazonaws.com"}
    assert evaluate([trust], Request("sts:AssumeRole", principal=lam, context={"aws:SourceAccount": "1"})).allowed
    assert not evaluate([trust], Request("sts:AssumeRole", principal=lam, context={"aws:SourceAccount": "2"})).allowed
    assert not evaluate([trust], Request("sts:AssumeRole", principal={"Service": "ec2.amazonaws.com"})).allowed


def test_unknown_statement_keys_are_refused():
    with pytest.raises(UnsupportedPolicy):
        evaluate([doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Conditions": {}})], Request("s3:GetObject"))
    with pytest.raises(UnsupportedPolicy):
        evaluate([doc({"Effect": "Allow", "Action": "*"})], Request("s3:GetObject"))


# Intrinsics ---------------------------------------------------------------------------------------------

TEMPLATES = {
    "App-Data": {
        "Resources": {
            "Bucket1": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Named": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "fixed-name"}},
        },
        "Outputs": {
            "BucketName": {"Value": {"Ref": "Bucket1"}, "Export": {"Name": "app-bucket"}},
            "PublishArn": {"Value": {"Fn::GetAtt": ["Bucket1", "Arn"]}},
        },
    },
    "App-Work": {
        "Resources": {
            "Role1": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Path": "/app/",
                    "AssumeRolePolicyDocument": doc(
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sagemaker.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ),
                    "PermissionsBoundary": {"Ref": "Boundary"},
                    "ManagedPolicyArns": [
                        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
                    ],
                },
            },
            "Policy1": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "Role1"}],
                    "PolicyDocument": doc(
                        allow(
                            "s3:GetObject",
                            {
                                "Fn::Join": [
                                    "",
                                    [
                                        "arn:",
                                        {"Ref": "AWS::Partition"},
                                        ":s3:::",
                                        {"Fn::ImportValue": "app-bucket"},
                                        "/*",
                                    ],
                                ]
                            },
                        ),
                        allow(
                            "s3:GetObject",
                            {
                                "Fn::Join": [
                                    "",
                                    [
                                        {"Fn::GetStackOutput": {"StackName": "App-Data", "OutputName": "PublishArn"}},
                                        "/x",
                                    ],
                                ]
                            },
                        ),
                        allow(
                            "logs:PutLogEvents",
                            {"Fn::Sub": ["arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:${G}", {"G": "/g"}]},
                        ),
                        allow("iam:PassRole", {"Fn::GetAtt": ["Role1", "Arn"]}),
                        allow(
                            "s3:ListBucket",
                            {"Fn::Join": ["", ["arn:aws:s3:::", {"Fn::ImportValue": "unknown-export"}]]},
                        ),
                    ),
                },
            },
            "Boundary": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "ManagedPolicyName": "app-boundary",
                    "PolicyDocument": doc(allow(["s3:*", "iam:PassRole"])),
                },
            },
        }
    },
}


def test_templates_resolve_intrinsics_and_roles():
    t = Templates(TEMPLATES, account="111111111111", region="eu-west-1")
    (role,) = t.roles()
    assert role.arn == "arn:aws:iam::111111111111:role/app/App-Work-Role1-abcdef123456"
    assert role.boundary_ref == "arn:aws:iam::111111111111:policy/app-boundary"
    bucket = t.ref("App-Data", "Bucket1")
    assert bucket == "app-data-bucket1-abcdef123456"  # generated bucket names are lower case
    assert t.ref("App-Data", "Named") == "fixed-name"
    resources = [s["Resource"] for d in role.identity for s in d["Statement"]]
    assert f"arn:aws:s3:::{bucket}/*" in resources  # ImportValue → the exporting stack's value
    assert f"arn:aws:s3:::{bucket}/x" in resources  # GetStackOutput → the output's value
    assert "arn:aws:logs:eu-west-1:111111111111:log-group:/g" in resources
    assert role.arn in resources
    assert "arn:aws:s3:::unknown-export" in resources  # an unknown export resolves to its name
    # the AWS-managed policy's document is known; the boundary caps it (logs is not in the boundary)
    assert role.can(Request("s3:GetObject", f"arn:aws:s3:::{bucket}/k")).allowed
    assert role.can(Request("iam:PassRole", role.arn)).allowed
    assert not role.can(Request("logs:PutLogEvents", "arn:aws:logs:eu-west-1:111111111111:log-group:/g")).allowed


def test_templates_refuse_unknown_aws_managed_policies_and_intrinsics():
    t = Templates(TEMPLATES, account="1", region="r")
    with pytest.raises(UnsupportedPolicy, match="AdministratorAccess"):
        t.managed_policy_by_arn("arn:aws:iam::aws:policy/AdministratorAccess")
    with pytest.raises(UnsupportedPolicy, match="Fn::If"):
        t.resolve("App-Work", {"Fn::If": ["c", "a", "b"]})
