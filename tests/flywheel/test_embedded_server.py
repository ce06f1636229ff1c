"""The embedded AWS as a server on 127.0.0.1 (``flywheel up`` / ``demo``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from flywheel import embedded as emb
from flywheel.embedded import EmbeddedAws, PortInUseError


@pytest.fixture
def server() -> Iterator[EmbeddedAws]:
    aws = EmbeddedAws.serve(0)
    try:
        yield aws
    finally:
        aws.close()


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_server_mode_listens_on_localhost_and_refuses_a_taken_port(server: EmbeddedAws) -> None:
    assert server.endpoint_url is not None and server.endpoint_url.startswith("http://127.0.0.1:")
    server.client("s3").create_bucket(Bucket="via-http", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    remote = EmbeddedAws.connect(server.endpoint_url)
    assert "via-http" in [b["Name"] for b in remote.client("s3").list_buckets()["Buckets"]]
    with pytest.raises(PortInUseError, match=f"port {server.port} on 127.0.0.1 is already in use"):
        EmbeddedAws.serve(server.port or 0)


@pytest.mark.enable_socket
@pytest.mark.network_local
def test_connect_to_nothing_names_the_fix() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(emb.EmbeddedAwsError, match="flywheel up"):
        EmbeddedAws.connect(f"http://127.0.0.1:{port}")
