"""Suite-wide settings: offline, no AWS credentials, fast CDK synth.

Sockets are blocked by pytest-socket (``--disable-socket`` in pyproject); tests that need a localhost
port opt in explicitly.
"""

from __future__ import annotations

import os

# Set before aws_cdk is imported anywhere: the built-in template validator costs 5-10 s per process;
# one validating synth runs as its own check (tests/security/test_validating_synth.py, make synth).
os.environ["CDK_VALIDATION"] = "false"
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# No credentials may leak in from the developer's machine: every AWS call must hit moto or fail.
for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(var, None)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

import botocore.loaders  # noqa: E402

# urllib3 probes IPv6 support by creating a socket at import time (no traffic); import it before
# pytest-socket starts blocking so the probe is not mistaken for a test reaching the network.
import urllib3  # noqa: E402, F401

# botocore parses a service's JSON model once per *session*; the lifecycle handlers and the local runtime
# build a session per test, so the suite parsed the same ~1 MB models over a thousand times (about half the
# CPU of the handler tests). One parse per process: the files are read-only and botocore never mutates what
# it loaded (one session already shares these objects between its clients).
_parsed_models: dict[str, object] = {}
_load_file = botocore.loaders.JSONFileLoader.load_file


def _load_file_once(self: botocore.loaders.JSONFileLoader, file_path: str) -> object:
    if file_path not in _parsed_models:
        _parsed_models[file_path] = _load_file(self, file_path)
    return _parsed_models[file_path]


botocore.loaders.JSONFileLoader.load_file = _load_file_once  # type: ignore[method-assign]

# The mutation suite's count in the terminal summary (on the xdist controller too).
from tests.security.mutation_report import pytest_terminal_summary  # noqa: E402, F401
