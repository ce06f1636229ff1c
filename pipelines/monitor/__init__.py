"""Flywheel's own drift monitor (``drift.py``): the scheduled processing job and ``flywheel monitor``."""
