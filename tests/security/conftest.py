"""CDK fixtures (see tests/cdk_fixtures.py). The mutation suite's summary line: mutation_report.py."""

from tests.cdk_fixtures import dev, prod, stages, synthesized, toolchain  # noqa: F401
