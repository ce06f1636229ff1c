"""Pipeline templates: one folder per template, discovered by its ``template.py`` (the template contract,
:mod:`pipelines.template`), next to its ``definition.py`` (the only SageMaker SDK importer) and the step
code that runs in the SageMaker containers; the SDK-offline build harness is :mod:`pipelines.sdk_offline`.

Adding a template = adding a folder with a ``template.py``; it is discovered here, so config can name
it. A template's name is its folder's name with ``_`` read as ``-`` (:func:`template_name`): the folder
is a Python package (``pipelines/batch_scoring/``), the name is what config and AWS names use
(``batch-scoring``, pipeline ``flywheel-<env>-<team>-batch-scoring``). :func:`load_template` also
searches extra directories (a test's ``tmp_path``, a team's own templates):
``load_template("minimal", search_path=[tmp_path])``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pipelines.template import PipelineTemplate

TEMPLATES_DIR = Path(__file__).resolve().parent
#: The file that makes a folder a template (it exposes ``TEMPLATE``).
TEMPLATE_FILE: Final = "template.py"


def template_name(folder: Path) -> str:
    """The name of the template in ``folder``: its folder name, ``_`` read as ``-``."""
    return folder.name.replace("_", "-")


def discover_templates(*roots: Path) -> dict[str, Path]:
    """Template name → folder for every folder of ``roots`` (default: ``pipelines/``) with a ``template.py``.

    The first root wins when two hold a folder of the same name (built-in templates come first).
    """
    found: dict[str, Path] = {}
    for root in roots or (TEMPLATES_DIR,):
        root = Path(root).resolve()
        if not root.is_dir():
            raise ValueError(f"template directory {root} does not exist")
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and (folder / TEMPLATE_FILE).is_file():
                found.setdefault(template_name(folder), folder)
    return found


#: Built-in template name -> folder. Discovered, not imported: importing a template is cheap, but its
#: definition pulls in the SageMaker SDK when it builds.
TEMPLATES: dict[str, Path] = discover_templates()


def load_template(name: str, search_path: Iterable[Path] = ()) -> PipelineTemplate:
    """The ``TEMPLATE`` of template ``name`` from ``pipelines/`` or, failing that, from ``search_path``.

    Raises KeyError listing the available templates when there is no such folder.
    """
    folders = discover_templates(TEMPLATES_DIR, *search_path)
    if name not in folders:
        raise KeyError(f"unknown pipeline template {name!r}; available: {sorted(folders)}")
    return _load_folder(folders[name])


@functools.cache
def _load_folder(folder: Path) -> PipelineTemplate:
    from pipelines.template import PipelineTemplate

    if folder.parent == TEMPLATES_DIR:
        module = importlib.import_module(f"pipelines.{folder.name}.template")
    else:
        # An extra folder becomes a synthetic package (one module identity per folder), so its
        # template.py imports its definition relatively: ``from .definition import ...``.
        package = f"flywheel_templates_{hashlib.sha256(str(folder).encode()).hexdigest()[:12]}_{folder.name}"
        if package not in sys.modules:
            spec = importlib.util.spec_from_loader(package, loader=None, is_package=True)
            assert spec is not None
            module = importlib.util.module_from_spec(spec)
            module.__path__ = [str(folder)]
            sys.modules[package] = module
        module = importlib.import_module(f"{package}.template")
    template = getattr(module, "TEMPLATE", None)
    if not isinstance(template, PipelineTemplate):
        raise TypeError(f"{folder / TEMPLATE_FILE}: TEMPLATE must be a pipelines.template.PipelineTemplate")
    if template.folder.resolve() != folder:
        raise ValueError(f"{folder / TEMPLATE_FILE}: TEMPLATE.folder is {template.folder}, not its own folder")
    return template
