"""``python -m bench [NAME ...] [-- extra args]``: run the benchmarks (all by default) one process each."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names or s.stem in names]
        if not scripts:
            print(f"no benchmark named {names}; available: {[s.stem for s in HERE.glob('bench_*.py')]}")
            return 2
    failed = []
    for script in scripts:
        print(f"\n== {script.stem} ==", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.{script.stem}", *extra], cwd=HERE.parent)
        print(f"({script.stem}: {time.perf_counter() - start:.1f} s, exit {code})")
        if code:
            failed.append(script.stem)
    print(f"\nresults in {HERE / 'results'}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
