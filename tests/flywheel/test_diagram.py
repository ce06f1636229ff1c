"""The generated architecture diagrams (issue 17, ``flywheel/diagram.py``): the committed DOT and SVG files
are current (``make diagrams``), and the graph is read from the templates' references.

The currency check reuses the session's synthesized app (tests/cdk_fixtures.py): no synth of its own, and no
Graphviz (the SVG records the SHA-256 of the DOT it was rendered from).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flywheel import diagram
from flywheel.diagram import App, Edge, build_graph, read_app, render_all, stale, stamp_svg, team_view
from tests.cdk_fixtures import synthesized  # noqa: F401 - the session fixture
from tests.flywheel.diagram_app import LAKE, TEAM, small_app

FUNCTION = "AWS::Lambda::Function"


@pytest.fixture(scope="module")
def real(synthesized: Any) -> tuple[App, diagram.Graph, dict[str, str]]:  # noqa: F811
    app = read_app(synthesized[0])
    return app, build_graph(app), render_all(app)


def test_committed_diagrams_are_current(real):
    _app, _graph, files = real
    problems = stale(diagram.DIAGRAMS_DIR, files)
    assert problems == [], "docs/diagrams/ is stale: run `make diagrams`\n" + "\n".join(problems)
    assert set(files) == {"platform.dot", "team-churn.dot", "team-diagnostics.dot"}


def test_stale_names_each_problem(tmp_path: Path):
    files = {"platform.dot": "digraph a {}\n", "team-a.dot": "digraph b {}\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).with_suffix(".svg").write_text(stamp_svg("<?xml?>\n<svg></svg>", text))
    assert stale(tmp_path, files) == []
    (tmp_path / "team-a.dot").write_text("digraph changed {}\n")
    (tmp_path / "team-gone.dot").write_text("digraph gone {}\n")
    (tmp_path / "platform.svg").write_text(stamp_svg("<svg></svg>", "digraph older {}\n"))
    problems = stale(tmp_path, files)
    assert any("team-a.dot differs" in p for p in problems)
    assert any("team-gone.dot belongs to no team" in p for p in problems)
    assert any("platform.svg was not rendered from the current platform.dot" in p for p in problems)
    (tmp_path / "team-a.svg").unlink()
    assert any("team-a.svg was not rendered" in p for p in stale(tmp_path, files))


def _edge(graph: diagram.Graph, src: str, dst: str, kind: str) -> Edge:
    """The one edge of ``kind`` from a key starting with ``src`` to one starting with ``dst`` (``stack/lid``)."""
    found = [
        e for e in graph.edges if "/".join(e.src).startswith(src) and "/".join(e.dst).startswith(dst) and e.kind == kind
    ]
    assert len(found) == 1, (src, dst, kind, [e for e in graph.edges if "/".join(e.src).startswith(src)])
    return found[0]


def test_the_real_lifecycle_is_drawn_from_its_references(real):
    app, graph, files = real
    churn = "Flywheel-dev-Team-churn"
    lake, team = "Flywheel-dev-DataLake/Lake", f"{churn}/TeamLifecycle"
    # events: raw zone → data-arrival rule → function; registry → approval rule → deploy function
    _edge(graph, f"{lake}RawBucket", f"{team}DataArrivalRule", "event")
    _edge(graph, f"{team}DataArrivalRule", f"{team}DataArrivalFunction", "event")
    _edge(graph, f"{churn}/TeamRegistryModelPackageGroup", f"{team}ApprovalRule", "event")
    _edge(graph, f"{team}ApprovalRule", f"{team}DeployFunction", "event")
    # the data-arrival function starts the pipeline: a grant resolved from the literal pipeline ARN
    start = [
        e
        for e in graph.edges
        if e.kind == "grant" and e.src == (churn, _lid(app, churn, "TeamLifecycleDataArrival", FUNCTION))
    ]
    assert (churn, _lid(app, churn, "TeamTabularPipeline", "AWS::SageMaker::Pipeline")) in {e.dst for e in start}
    # only the tabular pipeline's preprocessing role reads the team's incoming raw data (with the key file)
    raw = (LAKE, _lid(app, LAKE, "LakeRawBucket", "AWS::S3::Bucket"))
    grant = _edge(graph, f"{churn}/TeamTabularPipeline", f"{lake}RawBucket", "grant")
    assert grant.dst == raw and "churn/incoming/*" in grant.label and "Preprocessing: read" in grant.label
    assert "Training" not in grant.label and "Evaluation" not in grant.label
    # the prod deploy function reads dev's registry (promotion): a cross-account ARN pattern
    _edge(graph, "Flywheel-prod-Team-churn/TeamLifecycleDeployFunction", f"{churn}/TeamRegistry", "grant")
    # the team's endpoint exists only at run time: named by the deploy function's grants, drawn dashed
    endpoint = ("runtime:dev", "flywheel-dev-churn")
    assert graph.nodes[endpoint].runtime and (churn, _lid(app, churn, "TeamLifecycleDeploy", FUNCTION)) in {
        e.src for e in graph.edges if e.dst == endpoint
    }
    assert '"runtime:dev/flywheel-dev-churn" [label="SageMaker endpoint' in files["team-churn.dot"]
    assert "dashed" in files["team-churn.dot"].split('"runtime:dev/flywheel-dev-churn" [', 1)[1].split("\n")[0]
    # the toolchain deploys every environment, prod after the manual approval
    assert "3. deploy 6 stacks after manual approval" in files["platform.dot"]


def _lid(app: App, stack: str, prefix: str, type_: str) -> str:
    """The one logical id of ``type_`` in ``stack`` that starts with ``prefix``."""
    (lid,) = [k[1] for k, r in app.resources.items() if k[0] == stack and k[1].startswith(prefix) and r.type == type_]
    return lid


def test_folding_events_grants_and_literal_arns():
    graph = build_graph(small_app())
    # the execution role and its policy are drawn with the function; the person's role stays a node
    assert (TEAM, "FnRole") not in graph.nodes and graph.owner[(TEAM, "FnPolicy")] == (TEAM, "Fn")
    assert "+ IAM role" in graph.nodes[(TEAM, "Fn")].lines[-1]
    assert graph.nodes[(TEAM, "PersonRole")].category == "people"
    edges = {(e.src, e.dst, e.kind): e.label for e in graph.edges}
    assert edges[((LAKE, "RawBucket"), (TEAM, "Rule"), "event")] == ""  # the rule's pattern names the bucket
    assert ((TEAM, "Rule"), (TEAM, "Fn"), "event") in edges  # its target
    assert edges[((TEAM, "Fn"), (LAKE, "RawBucket"), "grant")] == "t/incoming/*\nread/write"  # through the import
    assert ((TEAM, "Fn"), (TEAM, "Pipe"), "grant") in edges  # a literal ARN resolved by the pipeline's name
    assert ((TEAM, "Fn"), ("runtime:dev", "flywheel-dev-t"), "grant") in edges  # created at run time
    assert graph.nodes[("runtime:dev", "flywheel-dev-t")].runtime
    # a person's grants are the access table's, not lines
    assert not [e for e in graph.edges if e.src == (TEAM, "PersonRole")]


def test_output_is_deterministic():
    """Same DOT whatever the resources' order and the process's string hash seed (sets are never printed
    unsorted)."""
    one = team_view(small_app(), build_graph(small_app()), "t")
    assert one == team_view(small_app(True), build_graph(small_app(True)), "t")
    code = "from flywheel.diagram import *; from tests.flywheel.diagram_app import small_app as a; "
    code += "import sys; sys.stdout.write(team_view(a(), build_graph(a()), 't'))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout == one, seed
    assert '"Flywheel-dev-Team-t/Fn" -> "Flywheel-dev-DataLake/RawBucket"' in one
    assert "make diagrams" in one.splitlines()[0]
