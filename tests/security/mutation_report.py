"""The mutation suite's count in the terminal summary: ``mutation suite: N/M weakenings caught``.

Registered by ``tests/conftest.py`` (imported there), the one conftest pytest loads on the xdist controller
for every invocation (``make test`` runs ``pytest`` on the ``tests`` testpath; ``tests/security/conftest.py``
would only be loaded by workers).
"""

from __future__ import annotations

MUTATION_CASES = "tests/security/test_mutations.py::test_weakening_is_caught["


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """``mutation suite: N/M weakenings caught``. Under xdist this runs on the controller, whose
    ``stats`` hold the reports the workers sent; a case counts once (its call phase, or the phase that
    failed)."""
    outcomes: dict[str, str] = {}
    for outcome in ("passed", "failed", "error", "xfailed", "xpassed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if nodeid.startswith(MUTATION_CASES) and outcomes.get(nodeid) in (None, "passed"):
                outcomes[nodeid] = outcome
    if outcomes:
        caught = sum(1 for o in outcomes.values() if o == "passed")
        uncaught = sum(1 for o in outcomes.values() if o == "xfailed")
        line = f"mutation suite: {caught}/{len(outcomes)} weakenings caught"
        if uncaught:
            line += f" ({uncaught} known uncaught, xfail)"
        terminalreporter.write_sep("-", line)
