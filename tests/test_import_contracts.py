"""The layer contract (``[tool.importlinter]`` in pyproject.toml, run by ``lint-imports`` in ``make test``).

GIVEN a copy of the source tree with one deliberate violation, WHEN ``lint-imports`` checks the contract
it breaks, THEN that contract fails naming the import: each contract is proven to catch what it
forbids, not only to pass on today's code.

grimp (import-linter's graph) sees the step scripts' flat sibling imports (``from contract import ...``,
how they run in the container) as external modules, so the second half of "step code imports only its
own folder and the container's libraries" is an allow-list checked here: every import of a packaged
step file (what ``pipelines.packaging.step_files`` puts in the sourcedir) names a sibling file, the
standard library, or a distribution of the ``steps`` dependency group.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipelines.packaging import step_files

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
IMPORTLINTER = PYPROJECT["tool"]["importlinter"]
CONTRACT_IDS = [contract["id"] for contract in IMPORTLINTER["contracts"]]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# contract id -> (file to add, its source, the import lint-imports must report)
VIOLATIONS: dict[str, list[tuple[str, str, str]]] = {
    "lambdas-standalone": [
        (
            "lambdas/lifecycle/_bad.py",
            "from flywheel.state import StateStore\n",
            "lambdas.lifecycle._bad -> flywheel.state",
        ),
        ("lambdas/_bad.py", "import config.models\n", "lambdas._bad -> config.models"),
        ("lambdas/_bad.py", "def f():\n    import sagemaker\n", "lambdas._bad -> sagemaker"),
    ],
    "pipelines-no-flywheel": [
        ("pipelines/_bad.py", "from flywheel import cli\n", "pipelines._bad -> flywheel.cli"),
    ],
    "toolchain-standalone": [
        ("toolchain/_bad.py", "import naming\n", "toolchain._bad -> naming"),
        ("toolchain/_bad.py", "def f():\n    import pydantic\n", "toolchain._bad -> pydantic"),
    ],
    "stacks-no-flywheel": [
        ("stacks/components/_bad.py", "import flywheel.embedded\n", "stacks.components._bad -> flywheel.embedded"),
    ],
    "naming-leaf": [
        ("naming/_bad.py", "from config import loader\n", "naming._bad -> config.loader"),
        ("naming/_bad.py", "import pydantic\n", "naming._bad -> pydantic"),
    ],
    "step-code-container-only": [
        ("pipelines/tabular/_bad.py", "import naming\n", "pipelines.tabular._bad -> naming"),
        ("pipelines/tabular/_bad.py", "import sagemaker\n", "pipelines.tabular._bad -> sagemaker"),
        # Package-style import of a sibling: a second module identity, and absent in the container.
        (
            "pipelines/tabular/_bad.py",
            "from pipelines.tabular.contract import DataContract\n",
            "pipelines.tabular._bad -> pipelines.tabular.contract",
        ),
        (
            "pipelines/tabular/_bad.py",
            "from pipelines import packaging\n",
            "pipelines.tabular._bad -> pipelines.packaging",
        ),
    ],
}


def _copy_tree(dest: Path) -> Path:
    """The root packages' ``*.py`` files and pyproject.toml under ``dest``."""
    for package in IMPORTLINTER["root_packages"]:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo", *(f"--contract={c}" for c in contracts)]
    # PYTHONPATH: grimp must find the copy's packages, not the editable install of the checkout.
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_every_contract_has_a_proven_violation() -> None:
    assert sorted(VIOLATIONS) == sorted(CONTRACT_IDS)


def test_the_unmodified_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACT_IDS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("contract", "path", "source", "reported"),
    [(c, p, s, r) for c, cases in VIOLATIONS.items() for p, s, r in cases],
    ids=[f"{c}:{r.split(' -> ')[1]}" for c, cases in VIOLATIONS.items() for _, _, r in cases],
)
def test_a_violation_breaks_its_contract(tmp_path: Path, contract: str, path: str, source: str, reported: str) -> None:
    tree = _copy_tree(tmp_path)
    (tree / path).write_text(source, encoding="utf-8")

    result = _lint(tree, contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    assert reported in result.stdout, result.stdout


# Step code's flat imports: an allow-list ------------------------------------------------------------------


def _normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def container_modules() -> frozenset[str]:
    """Top-level import names of the ``steps`` dependency group (what the SageMaker images ship)."""
    wanted = {
        _normalize(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        for requirement in PYPROJECT["dependency-groups"]["steps"]
    }
    return frozenset(
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if any(_normalize(d) in wanted for d in distributions)
    )


def step_import_problems(template_dir: Path, allowed: frozenset[str]) -> list[str]:
    """Imports of the template's packaged step files that are no sibling, stdlib or container module."""
    files = [path for path in step_files(template_dir) if path.suffix == ".py"]
    siblings = {path.stem for path in files}
    problems = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"{path.name}:{node.lineno} relative import (step scripts run flat)")
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in siblings and top not in sys.stdlib_module_names and top not in allowed:
                    problems.append(f"{path.name}:{node.lineno} imports {name}")
    return problems


def _templates() -> list[Path]:
    return sorted(p for p in (ROOT / "pipelines").iterdir() if p.is_dir() and any(p.glob("*.py")))


def test_there_is_step_code_to_check() -> None:
    assert _templates() and {"numpy", "pandas", "sklearn", "xgboost"} <= container_modules()


@pytest.mark.parametrize("template_dir", _templates(), ids=lambda p: p.name)
def test_step_code_imports_only_its_folder_the_stdlib_and_the_container(template_dir: Path) -> None:
    assert step_import_problems(template_dir, container_modules()) == []


def test_the_step_allow_list_catches_what_the_graph_cannot_see(tmp_path: Path) -> None:
    template = tmp_path / "tmpl"
    template.mkdir()
    (template / "contract.py").write_text("import json\n", encoding="utf-8")
    (template / "definition.py").write_text("import sagemaker\n", encoding="utf-8")  # not packaged: allowed
    (template / "train.py").write_text(
        "import numpy\nfrom contract import x\nimport yaml\nfrom . import features\n"
        "def main():\n    from lambdas import lifecycle\n",
        encoding="utf-8",
    )

    assert step_import_problems(template, container_modules()) == [
        "train.py:3 imports yaml",
        "train.py:4 relative import (step scripts run flat)",
        "train.py:6 imports lambdas",
    ]
