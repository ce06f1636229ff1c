"""flywheel.serving / flywheel.capture: the inference container contract, data capture, isolation.

The model artifact is built the way the pipeline builds it: preprocess.py -> train.py on a small
generated churn batch, then the model folder packed as ``model.tar.gz``.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flywheel.capture import (
    BatchingCaptureSink,
    LocalCaptureSink,
    S3CaptureSink,
    capture_record,
    decode_data,
    iter_capture_lines,
    read_local_captures,
)
from flywheel.serving import (
    InvocationError,
    LoadedModel,
    ModelLoadError,
    PortInUseError,
    RunningServer,
    invoke,
    load_model,
    ping,
    request,
    serve,
)

REPO = Path(__file__).resolve().parents[2]
STEP_DIR = REPO / "pipelines" / "tabular"
CONTRACT = REPO / "config" / "contracts" / "churn.json"
KEY_PATTERN = re.compile(r"^capture/churn-dev/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl$")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """``model.tar.gz`` of a churn model trained by the step scripts, and curated test rows."""
    if str(STEP_DIR) not in sys.path:
        sys.path.insert(0, str(STEP_DIR))
    import preprocess
    import train

    from flywheel.datasets import write_churn_csv

    base = tmp_path_factory.mktemp("artifact")
    raw, out, model, contract_dir = base / "raw", base / "out", base / "model", base / "contract"
    raw.mkdir()
    contract_dir.mkdir()
    write_churn_csv(raw / "batch.csv", 800, seed=5)
    (base / "pii.key").write_text("serving-test-key-0123456789abcdef")
    shutil.copyfile(CONTRACT, contract_dir / "contract.json")
    prep = ["--contract", str(CONTRACT), "--input-dir", str(raw), "--output-dir", str(out)]
    prep += ["--pii-key-file", str(base / "pii.key"), "--resource-config", str(base / "absent.json")]
    assert preprocess.main(prep) == 0
    fit = ["--train", str(out / "train"), "--validation", str(out / "validation"), "--contract", str(contract_dir)]
    assert train.main([*fit, "--model-dir", str(model), "--num_round", "25", "--max_depth", "3"]) == 0
    tar_path = base / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:  # SageMaker's layout: the model folder's content at the root
        for p in sorted(model.rglob("*")):
            tar.add(p, arcname=p.relative_to(model).as_posix(), recursive=False)
    columns = json.loads((model / "metadata.json").read_text())["feature_names"]
    test = pd.read_parquet(out / "test")[columns].head(40).reset_index(drop=True)
    return tar_path, test


@pytest.fixture(scope="module")
def model(artifact: tuple[Path, pd.DataFrame]) -> Iterator[LoadedModel]:
    with load_model(artifact[0]) as loaded:
        yield loaded


def _threshold(model: LoadedModel) -> float:
    return float(json.loads((Path(model.model_dir) / "metadata.json").read_text())["decision_threshold"]["value"])


@pytest.fixture(scope="module")
def rows(artifact: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    return artifact[1]


@pytest.fixture(scope="module")
def server(model: LoadedModel) -> Iterator[RunningServer]:
    with serve(model, endpoint_name="churn-test") as running:
        yield running


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(header=False, index=False).encode()


def _probabilities(body: bytes) -> np.ndarray:
    return np.array([p["probability"] for p in json.loads(body)["predictions"]])


# --- the container contract over HTTP ----------------------------------------------------------------


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_ping_and_csv_invocation_match_in_process_predict(
    server: RunningServer, model: LoadedModel, rows: pd.DataFrame
) -> None:
    assert ping(server.url)
    assert request("GET", server.url + "/ping").status == 200
    resp = invoke(server.url, _csv(rows), "text/csv", "application/json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert resp.headers["X-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    probs = _probabilities(resp.body)
    assert len(probs) == len(rows)
    assert ((probs >= 0) & (probs <= 1)).all()
    # The typed parquet rows through predict_fn in-process: the same scores as text over HTTP.
    expected = model.predict(rows)["scores"]
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    labels = [p["label"] for p in resp.json()["predictions"]]
    cut = _threshold(model)  # the decision threshold chosen on the validation split at training
    assert labels == [1 if p >= cut else 0 for p in probs]


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_json_request_and_csv_response(server: RunningServer, model: LoadedModel, rows: pd.DataFrame) -> None:
    head = rows.head(5)
    objects = json.loads(head.to_json(orient="records"))
    resp = invoke(server.url, json.dumps({"instances": objects}), "application/json; charset=utf-8", "text/csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    lines = resp.body.decode().strip().splitlines()
    probs = np.array([float(line.split(",")[0]) for line in lines])
    np.testing.assert_allclose(probs, model.predict(head)["scores"], rtol=1e-6)
    as_lists = invoke(server.url, json.dumps(json.loads(head.to_json(orient="values"))), "application/json")
    np.testing.assert_allclose(_probabilities(as_lists.body), probs, rtol=1e-6)


@pytest.mark.enable_socket
@pytest.mark.network_local
@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"30-39,941,2024", "text/csv", "expected 14 values per row"),
        (b'{"instances": [', "application/json", "not valid JSON"),
        (b'{"instances": [{"tenure_months": 3}]}', "application/json", "missing column(s)"),
        (b"", "text/csv", "no rows"),
    ],
)
def test_bad_input_is_400_naming_the_problem_without_trace(
    server: RunningServer, body: bytes, content_type: str, needle: str
) -> None:
    resp = invoke(server.url, body, content_type)
    assert resp.status == 400
    error = resp.json()
    assert error["error"] == "Bad Request"
    assert needle in error["message"]
    assert "Traceback" not in resp.body.decode() and 'File "' not in resp.body.decode()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_media_types_paths_and_methods(server: RunningServer, rows: pd.DataFrame) -> None:
    body = _csv(rows.head(1))
    unsupported = invoke(server.url, body, "text/plain")
    assert unsupported.status == 415 and "text/plain" in unsupported.json()["message"]
    not_acceptable = invoke(server.url, body, "text/csv", accept="image/png")
    assert not_acceptable.status == 406 and "image/png" in not_acceptable.json()["message"]
    assert invoke(server.url, body, "text/csv", accept="*/*").content_type == "application/json"
    assert request("GET", server.url + "/predict").status == 404
    assert request("POST", server.url + "/models/x/invoke", body).status == 404
    assert request("GET", server.url + "/invocations").status == 405
    assert request("POST", server.url + "/ping", b"").status == 405


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_payload_over_the_limit_is_413_and_the_server_keeps_serving(model: LoadedModel, rows: pd.DataFrame) -> None:
    small = _csv(rows.head(1))
    with serve(model, max_payload_bytes=1024) as srv:
        resp = invoke(srv.url, small * 20, "text/csv")
        assert resp.status == 413
        assert "exceeds the limit of 1024 bytes" in resp.json()["message"]
        # Larger than the socket buffers: the client still gets its 413, not a broken pipe.
        assert invoke(srv.url, b"9" * (2 << 20), "text/csv").status == 413
        assert invoke(srv.url, small, "text/csv").status == 200


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_keep_alive_connection_survives_client_errors(server: RunningServer, rows: pd.DataFrame) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for body, status in [(_csv(rows.head(2)), 200), (b"1,2,3", 400), (_csv(rows.head(1)), 200)]:
            conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == status
            assert resp.getheader("Connection") != "close"
        sock = conn.sock
        conn.request("GET", "/ping")
        conn.getresponse().read()
        assert conn.sock is sock  # one connection served all requests
    finally:
        conn.close()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_internal_error_is_500_generic_and_logged(
    server: RunningServer, model: LoadedModel, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    def broken(data: Any, m: Any) -> Any:
        raise RuntimeError("secret internal detail /opt/ml/model")

    monkeypatch.setattr(model.module, "predict_fn", broken)
    with caplog.at_level(logging.ERROR, logger="flywheel.serving"):
        resp = invoke(server.url, _csv(rows.head(1)), "text/csv")
    assert resp.status == 500
    assert "internal error" in resp.json()["message"]
    assert "secret" not in resp.body.decode()
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_concurrent_requests(server: RunningServer, model: LoadedModel, rows: pd.DataFrame) -> None:
    expected = model.predict(rows)["scores"]

    def one(i: int) -> float:
        resp = invoke(server.url, _csv(rows.iloc[[i]]), "text/csv")
        assert resp.status == 200
        return float(_probabilities(resp.body)[0])

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(len(rows))))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# --- in-process --------------------------------------------------------------------------------------


def test_in_process_invoke_and_errors(model: LoadedModel, rows: pd.DataFrame) -> None:
    body, ctype = model.invoke(_csv(rows.head(3)), "text/csv", "text/csv")
    assert ctype == "text/csv" and len(body.decode().splitlines()) == 3
    for payload, content_type, accept, status in [
        (b"a,b", "text/csv", None, 400),
        (b"x", "application/xml", None, 415),
        (_csv(rows.head(1)), "text/csv", "application/xml", 406),
    ]:
        with pytest.raises(InvocationError) as err:
            model.invoke(payload, content_type, accept)
        assert err.value.status == status


def test_load_errors_name_the_problem(artifact: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a readable tar archive"):
        load_model(b"definitely not a tarball")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing.tar.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no code/ folder"):
        load_model(empty)
    shadow = tmp_path / "shadow"
    (shadow / "code").mkdir(parents=True)
    (shadow / "code" / "inference.py").write_text("import json\n")
    (shadow / "code" / "json.py").write_text("")
    with pytest.raises(ModelLoadError, match=r"shadows standard-library module.*json"):
        load_model(shadow)
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ModelLoadError, match="unsafe member"):  # paths out of the model folder are refused
        load_model(evil.getvalue())
    assert not (tmp_path.parent / "escape.txt").exists()


def _patched_artifact(tar_path: Path, extra_code: str) -> bytes:
    """The artifact with ``extra_code`` appended to its code/inference.py, as tar.gz bytes."""
    out = io.BytesIO()
    with tarfile.open(tar_path) as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == "code/inference.py" and data is not None:
                data += extra_code.encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_two_models_side_by_side_do_not_interfere(
    artifact: tuple[Path, pd.DataFrame], model: LoadedModel, rows: pd.DataFrame
) -> None:
    plain = ("inference", "contract", "features")
    before = {n: sys.modules.get(n) for n in plain}
    # B's code differs: every row gets the negative label, whatever its probability.
    patch = "\ndef decision_threshold(model):\n    return 1.5\n\n\nMARKER = 'B'\n"
    with load_model(_patched_artifact(artifact[0], patch)) as other:
        assert {n: sys.modules.get(n) for n in plain} == before  # nothing registered or replaced
        assert other.module is not model.module and not hasattr(model.module, "MARKER")
        assert other.modules["features"] is not model.modules["features"]
        assert Path(other.modules["contract"].__file__).is_relative_to(other.model_dir)  # type: ignore[arg-type]
        positive = rows[model.predict(rows)["scores"] >= _threshold(model)]
        assert len(positive), "the fixture model should predict some churners"
        body = _csv(positive)
        with serve(model, endpoint_name="model-a") as a, serve(other, endpoint_name="model-b") as b:
            ra, rb = invoke(a.url, body).json(), invoke(b.url, body).json()
        assert {p["label"] for p in ra["predictions"]} == {1}
        assert {p["label"] for p in rb["predictions"]} == {0}
        assert [p["probability"] for p in ra["predictions"]] == [p["probability"] for p in rb["predictions"]]
        scratch = other.model_dir
    assert not scratch.exists()  # close() removed the unpacked artifact
    with pytest.raises(InvocationError) as err:
        other.invoke(body)
    assert err.value.status == 503


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_port_in_use_is_a_clear_error(server: RunningServer, model: LoadedModel) -> None:
    with pytest.raises(PortInUseError, match=f"port {server.port} on 127.0.0.1 is already in use"):
        serve(model, port=server.port)
    assert ping(server.url)


# --- data capture ------------------------------------------------------------------------------------


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_local_capture_in_sagemaker_format(model: LoadedModel, rows: pd.DataFrame, tmp_path: Path) -> None:
    csv_body = _csv(rows.head(2))
    json_body = json.dumps({"instances": json.loads(rows.head(1).to_json(orient="values"))}).encode()
    sink = LocalCaptureSink(tmp_path / "capture")
    with serve(model, capture=sink, endpoint_name="churn-dev") as srv:
        first = invoke(srv.url, csv_body, "text/csv", "text/csv")
        second = request(
            "POST", srv.url + "/invocations", json_body,
            {"Content-Type": "application/json", "X-Amzn-SageMaker-Inference-Id": "req-42"},
        )  # fmt: skip
        assert invoke(srv.url, b"1,2", "text/csv").status == 400  # refused requests are not captured
    files = sink.files()
    assert files, "stop() must flush the capture"
    for f in files:
        rel = f.relative_to(tmp_path).as_posix()
        assert KEY_PATTERN.match(rel), rel
    records = list(read_local_captures(tmp_path / "capture"))
    assert len(records) == 2
    by_id = {r["eventMetadata"]["eventId"]: r for r in records}
    rec = by_id[first.headers["X-Amzn-RequestId"]]
    assert rec["eventVersion"] == "0"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", rec["eventMetadata"]["inferenceTime"])
    inp, out = rec["captureData"]["endpointInput"], rec["captureData"]["endpointOutput"]
    assert (inp["mode"], inp["encoding"], inp["observedContentType"]) == ("INPUT", "CSV", "text/csv")
    assert (out["mode"], out["encoding"], out["observedContentType"]) == ("OUTPUT", "CSV", "text/csv")
    assert decode_data(inp) == csv_body and decode_data(out) == first.body
    rec = by_id[second.headers["X-Amzn-RequestId"]]
    assert rec["eventMetadata"]["inferenceId"] == "req-42"
    assert rec["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert decode_data(rec["captureData"]["endpointOutput"]) == second.body


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_s3_capture_sink_layout_and_sse_kms(model: LoadedModel, rows: pd.DataFrame) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="capture", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        key_id = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["KeyId"]
        sink = S3CaptureSink(s3, "capture", "/capture/", kms_key_id=key_id, max_records=2)
        with serve(model, capture=sink, endpoint_name="churn-dev") as srv:
            for i in range(5):
                assert invoke(srv.url, _csv(rows.iloc[[i]]), "text/csv").status == 200
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="capture")["Contents"]]
        assert len(keys) >= 3  # objects of at most two records
        total = 0
        for key in keys:
            assert KEY_PATTERN.match(key), key
            obj = s3.get_object(Bucket="capture", Key=key)
            assert obj["ServerSideEncryption"] == "aws:kms"
            assert obj["SSEKMSKeyId"].endswith(key_id)
            n = len(list(iter_capture_lines(obj["Body"].read().decode())))
            assert 1 <= n <= 2
            total += n
        assert total == 5


class _FlakySink(BatchingCaptureSink):
    """Fails the first write, then keeps batches in memory."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_next = True
        self.batches: list[tuple[str, str, datetime, bytes]] = []

    def _put(self, endpoint_name: str, variant: str, at: datetime, payload: bytes) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("storage unavailable")
        self.batches.append((endpoint_name, variant, at, payload))


def _record(i: int) -> dict[str, Any]:
    return capture_record(
        request_body=f"{i}".encode(), request_content_type="text/csv", response_body=b"\x00\xff",
        response_content_type="application/octet-stream", event_id=str(i), inference_time=datetime.now(UTC),
    )  # fmt: skip


def _wait_for(predicate: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_batching_sink_by_count_by_time_retries_and_hours() -> None:
    at = datetime(2026, 3, 1, 10, 59, 59, tzinfo=UTC)
    with _FlakySink(max_records=2, max_seconds=0.05) as sink:
        sink.write("ep", "AllTraffic", _record(0), at)  # flushed by time; first attempt fails, retried
        assert _wait_for(lambda: len(sink.batches) == 1)
        sink.write("ep", "AllTraffic", _record(1), at)
        sink.write("ep", "AllTraffic", _record(2), at.replace(hour=11))  # next hour: its own object
        assert _wait_for(lambda: len(sink.batches) == 3)
    assert sink.buffered == 0 and sink.dropped == 0
    hours = sorted(b[2].hour for b in sink.batches)
    assert hours == [10, 10, 11]
    records = [r for b in sink.batches for r in iter_capture_lines(b[3].decode())]
    assert sorted(r["eventMetadata"]["eventId"] for r in records) == ["0", "1", "2"]
    out = records[0]["captureData"]["endpointOutput"]
    assert out["encoding"] == "BASE64" and decode_data(out) == b"\x00\xff"
    with pytest.raises(RuntimeError, match="closed"):
        sink.write("ep", "AllTraffic", _record(3), at)
    with pytest.raises(ValueError, match="endpoint name"):
        LocalCaptureSink(".").write("../etc", "AllTraffic", _record(4), at)


def test_flusher_thread_ends_on_close(tmp_path: Path) -> None:
    sink = LocalCaptureSink(tmp_path, max_records=1000, max_seconds=30)
    before = set(threading.enumerate())
    sink.write("ep", "AllTraffic", _record(0), datetime.now(UTC))
    started = set(threading.enumerate()) - before
    assert [t.name for t in started] == ["LocalCaptureSink-flusher"]
    sink.close()  # writes the buffered record without waiting 30 s
    assert not any(t.is_alive() for t in started)
    assert len(list(read_local_captures(tmp_path))) == 1


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_measure_endpoint_uses_one_keep_alive_connection_and_counts_errors(
    server: RunningServer, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel import serving

    opened: list[int] = []
    original = http.client.HTTPConnection.connect

    def counting(self: http.client.HTTPConnection) -> None:
        opened.append(1)
        original(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counting)
    singles = [_csv(rows.iloc[[i]]) for i in range(5)]
    figures = serving.measure_endpoint(server.url, singles, _csv(rows.head(8)), batch_rows=8, requests=30, warmup=3)
    assert len(opened) == 1  # warm-up, latencies and batches over the same connection
    assert figures["client"] == "http keep-alive" and figures["errors"] == 0 and figures["requests"] == 30
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["rows_per_s"] > 0
    bad = serving.measure_endpoint(server.url, [b"1,2,3\n"], _csv(rows.head(2)), batch_rows=2, requests=4, warmup=0)
    assert bad["errors"] == 4  # a 400 per single-row request: counted, not raised
    with pytest.raises(ValueError, match="no single-row request bodies"):
        serving.measure_endpoint(server.url, [], b"", batch_rows=1, requests=1)
