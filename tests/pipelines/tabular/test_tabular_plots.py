"""evaluate.start_plots: the plots are drawn in a forked child while the step computes, byte for byte the ones
drawn inline; a child that fails leaves the drawing to the step itself (its errors are the step's)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import evaluate
import numpy as np
import pytest
from contract import load_contract
from inference import model_fn, predict_scores
from tabular_helpers import PipelineRun
from train import read_split


def _inputs(run: PipelineRun) -> tuple[object, np.ndarray, np.ndarray]:
    """The chain's model, test labels and scores, as evaluate computes them."""
    model = model_fn(str(run.model))
    test = read_split(run.processed / "test")
    scores = predict_scores(test[model.columns], model)
    y = evaluate.encode_labels(test[load_contract(run.contract_path).target], model.labels)
    return model, (y.astype(int) if model.problem != "regression" else y), scores


@pytest.mark.parametrize("name", ["churn", "diabetes", "wine"])
def test_plots_drawn_in_a_child_are_the_inline_ones(
    chains: dict[str, PipelineRun], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = chains[name]
    model, y, scores = _inputs(run)
    parent, drawn_by = os.getpid(), []
    draw = evaluate.make_plots

    def recording(*args: object, **kwargs: object) -> list[str]:
        drawn_by.append(os.getpid())
        (tmp_path / "drawn-by").write_text(str(os.getpid()))  # the child's list is its own copy
        return draw(*args, **kwargs)

    monkeypatch.setattr(evaluate, "make_plots", recording)
    wait = evaluate.start_plots(model, y, scores, tmp_path / "child", threshold=0.5)
    names = wait()
    assert drawn_by == [] and int((tmp_path / "drawn-by").read_text()) != parent  # drawn in another process
    inline = draw(model, y, scores, tmp_path / "inline", threshold=0.5)
    assert names == inline and names
    for file in names:
        assert (tmp_path / "child" / file).read_bytes() == (tmp_path / "inline" / file).read_bytes()


def test_a_failing_child_leaves_the_plots_to_the_step(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = chains["churn"]
    model, y, scores = _inputs(run)
    parent, draw = os.getpid(), evaluate.make_plots

    def broken_in_the_child(*args: object, **kwargs: object) -> list[str]:
        if os.getpid() != parent:
            os._exit(3)  # dies without a word, as a crash would
        return draw(*args, **kwargs)

    monkeypatch.setattr(evaluate, "make_plots", broken_in_the_child)
    with caplog.at_level(logging.WARNING, logger="flywheel.evaluate"):
        names = evaluate.start_plots(model, y, scores, tmp_path / "plots", threshold=0.5)()
    assert names and all((tmp_path / "plots" / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    assert "the plotting process failed (died: exit code 3): drawing the plots here" in caplog.text


def test_an_error_while_plotting_is_the_steps_error(
    chains: dict[str, PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = chains["churn"]
    model, y, scores = _inputs(run)

    def broken(*args: object, **kwargs: object) -> list[str]:
        raise OSError("disk full")

    monkeypatch.setattr(evaluate, "make_plots", broken)
    wait = evaluate.start_plots(model, y, scores, tmp_path / "plots", threshold=0.5)
    with pytest.raises(OSError, match="disk full"):
        wait()
