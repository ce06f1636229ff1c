"""The erasure Lambda in-process under moto: a request object → erase → receipt; bad input changes nothing.

GIVEN a raw batch (CSV, the subject in clear), a features split (parquet, the subject's HMAC token), the
team's PII key and a registered package whose lineage names the batch, WHEN an erasure request object
lands and ``lambda_handler`` gets its ``Object Created`` event, THEN the subject's rows are gone from
every version, the receipt (no PII) lists the batch and the package, and the request object is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from lambdas.common.env import ConfigError
from lambdas.erasure import handler
from lambdas.erasure.config import ErasureConfig
from lambdas.erasure.logic import remove_csv_rows, subject_token, subject_token_v2
from tests.events import load_event

from .conftest import REGION
from .support import ACCOUNT, FakeLambdaContext, assert_clean_error

BUCKETS = {z: f"flywheel-local-{z}" for z in ("raw", "curated", "features", "reports")}
PIPELINE = "flywheel-local-churn-tabular"
GROUP = "flywheel-local-churn"
KEY = b"erasure-test-key-0123456789abcdef-0123456789"
SUBJECT = "C000000002"
TOKEN = hmac.new(KEY, SUBJECT.encode(), hashlib.sha256).hexdigest()[:32]
RAW_KEY = "churn/incoming/batch-1/churn.csv"
FEATURES_KEY = f"{PIPELINE}/exec-1/train/part-algo-1.parquet"
CSV = 'customer_id,name,tenure\n"C000000001","Ann Lee",3\n"C000000002","Bo ""B"" Wu",5\n"C000000003","Cy\nNewline",7\n'
ENV = {
    "TEAM": "churn",
    "ACCOUNT_ID": ACCOUNT,
    "RAW_BUCKET": BUCKETS["raw"],
    "CURATED_BUCKET": BUCKETS["curated"],
    "FEATURES_BUCKET": BUCKETS["features"],
    "REPORTS_BUCKET": BUCKETS["reports"],
    "REPORTS_KMS_KEY_ID": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0000-1111",
    "PIPELINE_NAMES": PIPELINE,
    "MODEL_PACKAGE_GROUP": GROUP,
    "ID_COLUMNS": "customer_id",
}


def _parquet(tokens: list[str]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"customer_id": tokens, "tenure": list(range(len(tokens)))}), out)
    return out.getvalue()


@pytest.fixture
def erasure(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler module configured for team churn, with its data in moto."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in BUCKETS.values():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKETS["raw"], Key="churn/_keys/pii-hmac.key", Body=KEY + b"\n")
    s3.put_object(Bucket=BUCKETS["raw"], Key=RAW_KEY, Body=CSV.encode())
    s3.put_object(Bucket=BUCKETS["raw"], Key="churn/incoming/batch-1/_SUCCESS", Body=b"")
    s3.put_object(Bucket=BUCKETS["features"], Key=FEATURES_KEY, Body=_parquet(["t" * 32, "u" * 32]))
    s3.put_object(Bucket=BUCKETS["features"], Key=FEATURES_KEY, Body=_parquet(["t" * 32, TOKEN, "u" * 32]))
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "x"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={
            "flywheel:input-data-uri": f"s3://{BUCKETS['raw']}/churn/incoming/batch-1/",
            "flywheel:execution-id": "exec-1",
        },
    )
    handler.configure(ENV)
    yield handler
    handler.configure()


def _request(s3: Any, body: Any, name: str = "dsr-1.json", team: str = "churn") -> dict[str, Any]:
    key = f"{team}/_erasure/requests/{name}"
    text = body if isinstance(body, str) else json.dumps(body)
    put = s3.put_object(Bucket=BUCKETS["raw"], Key=key, Body=text.encode())
    return load_event("s3_object_created", **{"detail.object.key": key, "detail.object.version-id": put["VersionId"]})


def _state(s3: Any) -> dict[str, set[tuple[str, str]]]:
    out = {}
    for zone, bucket in BUCKETS.items():
        versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
        out[zone] = {(v["Key"], v["VersionId"]) for v in versions}
    return out


def _data_state(s3: Any) -> dict[str, set[tuple[str, str]]]:
    """Versions of everything but the request objects (which the handler consumes)."""
    return {z: {(k, v) for k, v in keys if "/_erasure/requests/" not in k} for z, keys in _state(s3).items()}


def test_a_request_erases_the_subject_everywhere_and_writes_a_receipt(erasure: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    event = _request(s3, {"team": "churn", "subject": SUBJECT, "requested_by": "dpo@example.org"})
    response = erasure.lambda_handler(event, FakeLambdaContext())
    assert response["status"] == "erased", response
    assert response["batches"] == ["churn/incoming/batch-1/"]
    assert response["packages"][0]["version"] == 1 and "retrain" in response["packages"][0]["action"]
    # every version of the data objects: no subject, no token; other records byte for byte
    for zone, key in (("raw", RAW_KEY), ("features", FEATURES_KEY)):
        versions = s3.list_object_versions(Bucket=BUCKETS[zone], Prefix=key)["Versions"]
        assert len(versions) == 1, versions
        body = s3.get_object(Bucket=BUCKETS[zone], Key=key)["Body"].read()
        if zone == "raw":
            assert body.decode() == CSV.replace('"C000000002","Bo ""B"" Wu",5\n', "")
        else:
            assert pq.read_table(io.BytesIO(body)).column("customer_id").to_pylist() == ["t" * 32, "u" * 32]
    receipt = s3.get_object(Bucket=BUCKETS["reports"], Key="_erasure/churn/dsr-1.json")["Body"].read()
    assert SUBJECT.encode() not in receipt and TOKEN.encode() not in receipt and b"dpo@" not in receipt
    doc = json.loads(receipt)
    assert doc["rows_removed"] == 2 and doc["versions_removed"] == 3  # raw 1 + features 2
    # the request named the subject in clear: it is gone, every version
    assert "Versions" not in s3.list_object_versions(Bucket=BUCKETS["raw"], Prefix="churn/_erasure/")
    # a redelivered event finds the request gone and changes nothing
    before = _state(s3)
    again = erasure.lambda_handler(event, FakeLambdaContext())
    assert_clean_error(again)
    assert again["error"]["code"] == "RequestGone" and _state(s3) == before
    # a new request for the same subject finds nothing, changes nothing, writes no receipt
    second = erasure.lambda_handler(
        _request(s3, {"team": "churn", "subject": SUBJECT}, "dsr-2.json"), FakeLambdaContext()
    )
    assert second["status"] == "nothing-found" and "nothing to erase" in second["message"]
    assert _data_state(s3) == _data_state_before(before)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKETS["reports"], Prefix="_erasure/churn/dsr-2")


def _data_state_before(state: dict[str, set[tuple[str, str]]]) -> dict[str, set[tuple[str, str]]]:
    return {z: {(k, v) for k, v in keys if "/_erasure/requests/" not in k} for z, keys in state.items()}


BAD_REQUESTS: list[tuple[Any, str]] = [
    ("not json", "MalformedRequest"),
    ('["a list"]', "MalformedRequest"),
    ({"team": "churn", "subject": SUBJECT, "extra": 1}, "MalformedRequest"),
    ({"team": "fraud", "subject": SUBJECT}, "UnknownTeam"),
    ({"team": "churn", "subject": "  "}, "EmptySubject"),
    ({"team": "churn", "subject": "x\u0000y"}, "InvalidSubject"),
    ({"team": "churn", "subject": SUBJECT, "request_id": "../../x"}, "InvalidRequestId"),
    ({"team": "churn", "subject": SUBJECT, "reason": "x" * 2000}, "MalformedRequest"),
]


def test_bad_requests_are_rejected_and_change_nothing(erasure: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for i, (body, code) in enumerate(BAD_REQUESTS):
        event = _request(s3, body, name=f"bad-{i}.json")
        before = _state(s3)
        response = erasure.lambda_handler(event, FakeLambdaContext())
        assert_clean_error(response)
        assert response["error"]["code"] == code, (body, response)
        assert _state(s3) == before  # the request stays for a person to fix; no data changed


def test_objects_that_are_not_this_teams_requests_are_refused(erasure: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    before = _state(s3)
    for key in (
        "churn/incoming/batch-2/x.json",
        "fraud/_erasure/requests/dsr.json",
        "churn/_erasure/requests/a/b.json",
    ):
        event = load_event("s3_object_created", **{"detail.object.key": key})
        response = erasure.lambda_handler(event, FakeLambdaContext())
        assert_clean_error(response)
        assert response["error"]["code"] == "ForeignObject" and _state(s3) == before
    other_bucket = load_event("s3_object_created", **{"detail.bucket.name": "flywheel-local-features"})
    assert erasure.lambda_handler(other_bucket, FakeLambdaContext())["error"]["code"] == "ForeignObject"
    assert erasure.lambda_handler({}, FakeLambdaContext())["status"] == "rejected"
    assert erasure.lambda_handler("{not json", FakeLambdaContext())["error"]["code"] == "MalformedJson"


def test_an_object_locked_pii_zone_is_refused_before_any_change(erasure: Any) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for mode, code in (("COMPLIANCE", "ComplianceLocked"), ("GOVERNANCE", "GovernanceLocked")):
        locked = f"flywheel-local-features-{mode.lower()}"
        s3.create_bucket(
            Bucket=locked, CreateBucketConfiguration={"LocationConstraint": REGION}, ObjectLockEnabledForBucket=True
        )
        s3.put_object_lock_configuration(
            Bucket=locked,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": 1}},
            },
        )
        erasure.configure({**ENV, "FEATURES_BUCKET": locked})
        event = _request(s3, {"team": "churn", "subject": SUBJECT}, name=f"{mode}.json")
        before = _state(s3)
        response = erasure.lambda_handler(event, FakeLambdaContext())
        assert_clean_error(response)
        assert response["error"]["code"] == code and f"{mode.lower()} mode" in response["error"]["message"]
        assert _state(s3) == before


def test_access_denied_is_a_structured_failure(erasure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    event = _request(s3, {"team": "churn", "subject": SUBJECT})
    client = erasure.runtime().clients.client("s3")

    def denied(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObjectLockConfiguration")

    monkeypatch.setattr(client, "get_object_lock_configuration", denied)
    before = _state(s3)
    response = erasure.lambda_handler(event, FakeLambdaContext())
    assert_clean_error(response, "failed")
    assert response["error"]["code"] == "AccessDenied" and _state(s3) == before


def test_invalid_configuration_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ID_COLUMNS"):
        ErasureConfig.from_environ({k: v for k, v in ENV.items() if k != "ID_COLUMNS"})
    with pytest.raises(ConfigError, match="REPORTS_KMS_KEY_ID"):
        ErasureConfig.from_environ({**ENV, "REPORTS_KMS_KEY_ID": "alias/x"})


def test_tokens_match_the_preprocessing_step() -> None:
    """The Lambda's stdlib HMAC equals ``features.HmacTokenizer`` (the token in curated data)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pipelines" / "tabular"))
    from features import CmacTokenizer, HmacTokenizer

    for key in (KEY, KEY * 3):  # a key longer than the SHA-256 block is hashed first
        assert subject_token(key, SUBJECT) == HmacTokenizer(key).token(SUBJECT)
        # v2 (what preprocessing writes today): the Lambda's cryptography CMAC equals the buffered numpy one
        for subject in (SUBJECT, "", "x" * 16, "é" * 40):
            assert subject_token_v2(key, subject) == CmacTokenizer(key).token(subject)


def test_csv_rewrite_keeps_quoted_newlines_and_other_bytes() -> None:
    cleaned, removed = remove_csv_rows(CSV.encode(), ["customer_id"], "C000000003")
    assert removed == 1 and cleaned.decode() == CSV.replace('"C000000003","Cy\nNewline",7\n', "")
    assert remove_csv_rows(CSV.encode(), ["customer_id"], "C0000000") == (CSV.encode(), 0)  # a prefix is no match
    crlf = CSV.replace("\n", "\r\n").encode()
    cleaned, removed = remove_csv_rows(crlf, ["customer_id"], "C000000001")
    assert removed == 1 and b"Ann" not in cleaned and cleaned.startswith(b"customer_id,name,tenure\r\n")
