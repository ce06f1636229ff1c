"""CDK fixtures (see tests/cdk_fixtures.py)."""

from tests.cdk_fixtures import dev, prod, stages, synthesized, toolchain  # noqa: F401
