"""Benchmarks: each ``bench_*.py`` measures a target next to a baseline in the same run (a ratio, not
an absolute time — this machine is noisy) and writes ``bench/results/<name>.json``."""
