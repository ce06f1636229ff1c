"""Finding 12: the local endpoint under load and bad input: every request answered, bounded, in JSON."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flywheel.errors import RemoteBindError
from flywheel.serving import MAX_JSON_DEPTH, LoadedModel, RunningServer, load_model, serve

# Parses like the tabular artifact's input_fn: csv.reader for CSV, json.loads for JSON.
INFERENCE = """
import csv, io, json
def model_fn(model_dir):
    return "model"
def input_fn(body, content_type):
    text = body.decode("utf-8")
    if content_type.startswith("text/csv"):
        return [row for row in csv.reader(io.StringIO(text)) if row]
    return json.loads(text)
def predict_fn(data, model):
    return [len(data)]
def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction})
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    folder = tmp_path_factory.mktemp("model")
    (folder / "code").mkdir()
    (folder / "code" / "inference.py").write_text(INFERENCE)
    with load_model(folder) as loaded:
        yield loaded


@pytest.fixture
def server(model: LoadedModel) -> Iterator[RunningServer]:
    with serve(model, "127.0.0.1", 0, max_payload_bytes=1024 * 1024, max_concurrency=2) as running:
        yield running


def _post(server: RunningServer, body: bytes, content_type: str = "text/csv") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def _assert_json_error(status: int, content_type: str, body: bytes, expected: range) -> dict:
    assert status in expected, body
    assert content_type == "application/json", body
    data = json.loads(body)
    assert data["status"] == status
    return data


pytestmark = [pytest.mark.enable_socket, pytest.mark.network_local]


def test_fifty_concurrent_requests_are_all_answered(server: RunningServer) -> None:
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: _post(server, f"{i},{i}\n".encode() * 20), range(50)))
    assert [status for status, _, _ in results] == [200] * 50
    assert all(json.loads(body) == {"predictions": [20]} for _, _, body in results)


def test_the_listen_backlog_holds_a_burst_of_connections(server: RunningServer) -> None:
    # Connections opened before any is served: the kernel queue (request_queue_size) must take them all.
    assert server._server.request_queue_size >= 128
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(100)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert all(sock.recv(64).startswith(b"HTTP/1.1 200") for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def test_an_oversize_body_is_413_json(server: RunningServer) -> None:
    status, ctype, body = _post(server, b"1,2\n" * 300_000)
    _assert_json_error(status, ctype, body, range(413, 414))


def test_a_csv_field_over_128_kb_is_4xx_json(server: RunningServer) -> None:
    status, ctype, body = _post(server, b"a" * (200 * 1024) + b",1\n")
    _assert_json_error(status, ctype, body, range(400, 500))


def test_json_nested_10000_deep_is_4xx_json(server: RunningServer) -> None:
    status, ctype, body = _post(server, b"[" * 10_000 + b"]" * 10_000, "application/json")
    assert "nested deeper" in _assert_json_error(status, ctype, body, range(400, 500))["message"]
    # Nesting within the limit, brackets inside strings ignored, is the model's to judge.
    ok = b"[" * (MAX_JSON_DEPTH - 1) + b'"[[[["' + b"]" * (MAX_JSON_DEPTH - 1)
    assert _post(server, ok, "application/json")[0] == 200


def test_binary_garbage_is_4xx_json(server: RunningServer) -> None:
    status, ctype, body = _post(server, bytes(range(256)) * 8)
    _assert_json_error(status, ctype, body, range(400, 500))


def test_a_garbage_request_line_is_answered_in_json_not_html(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(bytes(range(1, 256)) + b"\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 4"), response[:200]
    assert b"Content-Type: application/json" in head and b"<html" not in response.lower()
    assert json.loads(body)["status"] >= 400


def test_a_saturated_endpoint_answers_503_json(model: LoadedModel) -> None:
    with serve(model, "127.0.0.1", 0, max_concurrency=1, queue_timeout=0.0) as running:
        running._server.slots.acquire()  # the one slot is busy
        try:
            status, ctype, body = _post(running, b"1,2\n")
        finally:
            running._server.slots.release()
        _assert_json_error(status, ctype, body, range(503, 504))
        assert _post(running, b"1,2\n")[0] == 200


def test_a_non_loopback_host_is_refused_unless_allowed(model: LoadedModel) -> None:
    with pytest.raises(RemoteBindError, match="allow-remote"):
        serve(model, "0.0.0.0", 0)
    with serve(model, "0.0.0.0", 0, allow_remote=True) as running:
        assert running.port > 0


def test_the_cli_refuses_0_0_0_0_without_allow_remote(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flywheel.cli import app

    result = CliRunner().invoke(app, ["serve", "--team", "churn", "--host", "0.0.0.0", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "--allow-remote" in result.output


def _raw_request(body_parts: list[bytes], length: int, port: int, *, pause: float = 0.05) -> socket.socket:
    """POST /invocations with a Content-Length of ``length``, its body sent in ``body_parts`` with pauses."""
    import time

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {length}\r\n\r\n"
    sock.sendall(head.encode())
    for part in body_parts:
        sock.sendall(part)
        time.sleep(pause)
    return sock


def test_a_body_arriving_in_pieces_is_read_whole_and_a_client_gone_mid_body_costs_nothing(
    server: RunningServer,
) -> None:
    # GIVEN 3,000 CSV rows (some non-ASCII UTF-8) sent in three pieces with pauses, THEN the model sees every row
    rows = b"".join(b"%d,caf\xc3\xa9,%d\n" % (i, i * 7) for i in range(3000))
    cuts = [0, 1000, 25_000, len(rows)]
    with _raw_request([rows[a:b] for a, b in itertools.pairwise(cuts)], len(rows), server.port) as sock:
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert json.loads(response.partition(b"\r\n\r\n")[2]) == {"predictions": [3000]}
    # WHEN a client announces 50,000 bytes, sends 10 and leaves, THEN the server answers the next request
    _raw_request([b"1,2,3\n4,5,"], 50_000, server.port).close()
    assert _post(server, b"1,2\n3,4\n") == (200, "application/json", b'{"predictions": [2]}')
