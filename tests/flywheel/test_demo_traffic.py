"""The demo's traffic is what its drift section reads: it must be a sample of the rows, not one batch repeated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel import demo, serving


def test_batch_requests_carry_different_rows_covering_the_samples(tmp_path: Path, monkeypatch: Any) -> None:
    samples = tmp_path / "samples.csv"
    samples.write_text("".join(f"{i},x\n" for i in range(1000)), encoding="utf-8")
    seen: dict[str, Any] = {}

    def fake(url: str, singles: Any, batch: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(singles=singles, batch=batch, **kwargs)
        return {}

    monkeypatch.setattr(serving, "measure_endpoint", fake)
    demo.measure("http://127.0.0.1:1", samples, requests=50, batch_rows=100)
    bodies = seen["batch"]
    assert len(bodies) == 10 and len(set(bodies)) == 10  # 1000 rows / 100 per batch, each batch other rows
    rows = [line for body in bodies for line in body.decode().splitlines()]
    assert sorted(rows, key=lambda r: int(r.split(",")[0])) == [f"{i},x" for i in range(1000)]
    assert seen["batch_rows"] == 100 and seen["requests"] == 50


def test_measure_endpoint_sends_the_batch_bodies_in_turn(monkeypatch: Any) -> None:
    sent: list[bytes] = []

    class Client:
        def __init__(self, url: str) -> None: ...
        def __enter__(self) -> Client:
            return self

        def __exit__(self, *exc: Any) -> None: ...
        def invoke(self, body: bytes, content_type: str) -> Any:
            sent.append(body)
            return type("R", (), {"ok": True})()

    monkeypatch.setattr(serving, "KeepAliveClient", Client)
    figures = serving.measure_endpoint(
        "u", [b"s\n"], [b"a\n", b"b\n", b"c\n"], batch_rows=1, requests=2, batches=5, warmup=0
    )
    assert sent[3:] == [b"a\n", b"b\n", b"c\n", b"a\n", b"b\n"] and figures["batches"] == 5
