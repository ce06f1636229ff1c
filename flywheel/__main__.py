"""``python -m flywheel`` = the ``flywheel`` CLI."""

from flywheel.cli import app

app()
