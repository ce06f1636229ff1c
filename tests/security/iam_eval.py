"""The offline IAM evaluator, for tests: it lives in :mod:`flywheel.iam_eval` (``flywheel access-report``
evaluates with it too); this module keeps the tests' import path."""

from flywheel.iam_eval import *  # noqa: F403
from flywheel.iam_eval import __all__, statements  # noqa: F401
