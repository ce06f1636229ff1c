"""Pipeline templates: one folder per template, each with a ``definition.py`` (the only SageMaker SDK
importer) and the step code that runs in the SageMaker containers.

Adding a template = adding a folder with a ``definition.py``; it is discovered here, so config can name it.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent

#: Template name -> folder. Discovered, not imported: importing a definition pulls in the SageMaker SDK.
TEMPLATES: dict[str, Path] = {
    p.name: p for p in sorted(TEMPLATES_DIR.iterdir()) if p.is_dir() and (p / "definition.py").exists()
}
