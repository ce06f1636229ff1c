"""What makes the commands start fast without changing what they do (issue 16): a lazy in-process embedded
AWS, moto's KMS key pairs made on first use, botocore's data parsed once for the clients and moto.

The timings themselves are measured in ``bench/bench_commands.py`` (ratios against ``python -c pass`` and a
bare moto start in the same run), never here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel import embedded as emb
from flywheel.embedded import NAMES, EmbeddedAws
from flywheel.runtime import LocalRuntime
from flywheel.state import StateStore

REPO = Path(__file__).resolve().parents[2]


def _kms_key(aws: EmbeddedAws, key_id: str):
    from moto.kms.models import kms_backends

    return kms_backends[emb.ACCOUNT][aws.region].keys[key_id]


def test_a_lazy_embedded_aws_starts_with_its_first_client_and_stops_on_close():
    assert not emb._mock_running(), "a previous test left the in-process embedded AWS running"
    aws = EmbeddedAws.in_process(lazy=True)
    assert not aws.started and not emb._mock_running()
    s3 = aws.client("s3")
    assert aws.started and emb._mock_active()
    s3.create_bucket(Bucket="lazy-one", CreateBucketConfiguration={"LocationConstraint": aws.region})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["lazy-one"]
    aws.close()
    assert not emb._mock_running()


def test_a_lazy_embedded_aws_joins_a_running_one_at_once(embedded):
    s3 = embedded.client("s3")
    s3.create_bucket(Bucket="shared-one", CreateBucketConfiguration={"LocationConstraint": embedded.region})
    aws = EmbeddedAws.in_process(lazy=True)
    try:
        assert aws.started  # joined: what the running one holds is not "empty"
        assert "shared-one" in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]
    finally:
        aws.close()
    assert emb._mock_active()  # the first user's share keeps it running


def test_a_closed_lazy_embedded_aws_makes_no_client_and_starts_nothing():
    assert not emb._mock_running(), "a previous test left the in-process embedded AWS running"
    aws = EmbeddedAws.in_process(lazy=True)
    aws.close()
    with pytest.raises(emb.OfflineViolationError, match="closed"):
        aws.client("s3")
    assert not emb._mock_running()


def test_symmetric_keys_get_no_key_pair_and_asymmetric_ones_get_theirs_on_first_use(embedded):
    kms = embedded.client("kms")
    symmetric = kms.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=symmetric, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    pair = _kms_key(embedded, symmetric).private_key
    assert isinstance(pair, emb._DeferredKeyPair) and pair._pair is None  # no RSA key was generated

    signing = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
    assert _kms_key(embedded, signing).private_key._pair is None
    signature = kms.sign(KeyId=signing, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    verified = kms.verify(KeyId=signing, Message=b"m", Signature=signature, SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert verified["SignatureValid"]
    public = kms.get_public_key(KeyId=signing)["PublicKey"]
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    assert load_der_public_key(public).key_size == 2048
    assert not kms.verify(KeyId=signing, Message=b"other", Signature=signature, SigningAlgorithm="RSASSA_PSS_SHA_256")[
        "SignatureValid"
    ]


def test_moto_reads_service_data_through_the_clients_loader(embedded):
    from moto.core import base_backend, utils

    embedded.client("sagemaker")
    loader = embedded._session._session.get_component("data_loader")
    assert utils.create_loader() is loader
    session = base_backend.AccountSpecificBackend.get_session()
    assert session._session.get_component("data_loader") is loader
    # moto's backends still know every region of the service
    assert embedded.region in session.get_available_regions("sagemaker")


def test_status_with_no_embedded_aws_running_shows_the_mirrored_registry_without_starting_one(tmp_path):
    assert not emb._mock_running(), "a previous test left the in-process embedded AWS running"
    state = StateStore(tmp_path / "state")
    group = NAMES.model_package_group("churn")
    arn = f"arn:aws:sagemaker:{emb.REGION}:{emb.ACCOUNT}:model-package/{group}/1"
    package = {
        "ModelPackageArn": arn,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": 1,
        "ModelApprovalStatus": "PendingManualApproval",
    }
    state.save_package(group, 1, {"package": package, "objects": {}, "execution_arn": None}, create=True)
    aws = EmbeddedAws.in_process(lazy=True)
    try:
        status = LocalRuntime(aws, state).status()
        assert not aws.started  # nothing asked the embedded AWS: it would have been empty
    finally:
        aws.close()
    assert status["registry"]["churn"] == [
        {"ModelPackageArn": arn, "ModelPackageVersion": 1, "ModelApprovalStatus": "PendingManualApproval"}
    ]
    assert status["embedded_aws"] == {"mode": "in-process", "endpoint_url": None}


def _fresh_process(code: str, *args: str) -> tuple[object, str]:
    """Run ``code`` in a fresh interpreter from the repository root; (the JSON it printed last, its stdout)."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def test_every_session_of_a_process_reads_through_the_loader_moto_reads_through():
    """Which session comes first does not matter (the in-process test above assumed the embedded one did, and
    failed when another test's session had come first): a later session, of another region or of server
    mode, reads the same loader as moto's backends, so each data file is parsed once per process."""
    code = (
        "import json\n"
        "import moto.core.base_backend\n"
        "from moto.core import utils\n"
        "from flywheel import embedded as emb\n"
        "first = emb._boto3_session('us-east-1', False)\n"
        "with emb.in_process() as aws:\n"
        "    aws.client('sagemaker')\n"
        "    loader = aws._session._session.get_component('data_loader')\n"
        "    firsts = first._session.get_component('data_loader')\n"
        "    print(json.dumps([utils.create_loader() is loader, firsts is loader]))\n"
    )
    shared, _ = _fresh_process(code)
    assert shared == [True, True]


def test_flywheel_status_imports_neither_moto_nor_boto3(tmp_path):
    """The command a person runs most: its process never loads the embedded AWS when none is running."""
    code = (
        "import json, sys\n"
        "from flywheel.cli import app\n"
        "try:\n"
        "    app(['status', '--json', '--state-dir', sys.argv[1]])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps({m: m in sys.modules for m in ('moto', 'boto3', 'pandas', 'sagemaker')}))\n"
    )
    imported, stdout = _fresh_process(code, str(tmp_path / "state"))
    assert imported == {"moto": False, "boto3": False, "pandas": False, "sagemaker": False}
    assert '"teams"' in stdout  # it did print the status


def test_generating_the_demo_data_imports_no_scikit_learn(tmp_path):
    """The demo's churn data needs numpy and pyarrow; scikit-learn (~1.5 s with scipy.stats) is only for the
    sample datasets it ships, loaded when one is asked for."""
    code = (
        "import json, sys\n"
        "from flywheel import datasets\n"
        "datasets.write_churn_csv(sys.argv[1], 500, seed=0)\n"
        "before = 'sklearn' in sys.modules\n"
        "rows = len(datasets.load_wine())\n"
        "print(json.dumps({'before': before, 'after': 'sklearn' in sys.modules, 'wine': rows}))\n"
    )
    seen, _ = _fresh_process(code, str(tmp_path / "churn.csv"))
    assert seen == {"before": False, "after": True, "wine": 178}
