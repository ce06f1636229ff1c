"""``make checkov``: compare checkov's JSON report with the reviewed acknowledgments.

Usage: ``python -m tests.security.checkov_report <checkov.json>``. Prints the pass/fail counts and each
failure (check id, resource kind, count) with its acknowledgment; exits 1 when a failure is not
acknowledged in ``checkov_acknowledgments.json`` (check id + logical-id prefix), or when an
acknowledgment no longer matches anything (a stale one hides nothing, but is removed).
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

ACKNOWLEDGMENTS = Path(__file__).with_name("checkov_acknowledgments.json")


def main(report_path: str) -> int:
    acks = json.loads(ACKNOWLEDGMENTS.read_text())
    reports = json.loads(Path(report_path).read_text())
    reports = reports if isinstance(reports, list) else [reports]
    passed = sum(r["summary"]["passed"] for r in reports)
    failed = [f for r in reports for f in r["results"]["failed_checks"]]
    print(f"checkov: {passed} passed, {len(failed)} failed")
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    new, used = [], set()
    for f in failed:
        kind, _, logical_id = f["resource"].partition(".")
        ack = acks.get(f["check_id"], {})
        prefix = next((p for p in ack.get("resources", []) if logical_id.startswith(p)), None)
        if prefix is None:
            new.append(f"{f['check_id']} {kind} {logical_id} ({f['file_path']}): {f['check_name']}")
        else:
            used.add((f["check_id"], prefix))
        counts[(f["check_id"], kind, "acknowledged" if prefix else "NEW")] += 1
    for (check, kind, status), n in sorted(counts.items()):
        print(f"  {check:12} {kind:28} {n:3}  {status}")
    stale = [f"{c} {p}" for c, a in acks.items() for p in a["resources"] if (c, p) not in used]
    for line in new:
        print(f"not acknowledged: {line}")
    for line in stale:
        print(f"stale acknowledgment (nothing fails it): {line}")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
