"""The step code imports xgboost without scikit-learn (and its scipy.stats): training, evaluation and serving
(xgboost_core.py; evaluate.py computes its metrics in numpy), and scikit-learn stays importable afterwards.
Each case is a fresh interpreter: the point is what an import pulls in, which a pytest process cannot show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STEP_DIR = Path(__file__).resolve().parents[3] / "pipelines" / "tabular"


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter with the step folder on the path; the JSON it printed last."""
    done = subprocess.run(
        [sys.executable, "-c", f"import sys, json\nsys.path.insert(0, {str(STEP_DIR)!r})\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["train", "inference", "evaluate"])
def test_training_evaluation_and_serving_do_not_import_scikit_learn(module: str) -> None:
    seen = _fresh(
        f"import {module}\n"
        "modules = sys.modules\n"
        "print(json.dumps({'sklearn': 'sklearn' in modules, 'stats': 'scipy.stats' in modules,"
        " 'booster': hasattr(modules['xgboost'], 'Booster'),"
        " 'finders': [type(f).__name__ for f in sys.meta_path if 'Hidden' in type(f).__name__]}))"
    )
    assert seen == {"sklearn": False, "stats": False, "booster": True, "finders": []}  # nothing left behind


def test_scikit_learn_still_imports_after_and_xgboost_trains() -> None:
    seen = _fresh(
        "import numpy as np\n"
        "from xgboost_core import xgb\n"
        "from sklearn import metrics\n"
        "x = np.arange(40, dtype=float).reshape(20, 2); y = (x[:, 0] > 19).astype(float)\n"
        "b = xgb.train({'objective': 'binary:logistic'}, xgb.DMatrix(x, label=y), num_boost_round=3)\n"
        "p = b.predict(xgb.DMatrix(x))\n"
        "print(json.dumps({'auc': metrics.roc_auc_score(y, p), 'sklearn_api': xgb.compat.SKLEARN_INSTALLED}))"
    )
    assert seen == {"auc": 1.0, "sklearn_api": False}


def test_a_process_that_has_scikit_learn_gets_xgboost_as_it_is() -> None:
    seen = _fresh(
        "import sklearn\nfrom xgboost_core import xgb\nprint(json.dumps({'sklearn_api': xgb.compat.SKLEARN_INSTALLED}))"
    )
    assert seen == {"sklearn_api": True}


def test_another_thread_importing_scikit_learn_meanwhile_gets_it() -> None:
    """The hiding is the importing thread's only: a thread that imports scikit-learn while xgboost is being
    imported (it waits for the hiding finder to be in place, then imports) gets a working scikit-learn."""
    seen = _fresh(
        "import threading, time\n"
        "got = {}\n"
        "def other():\n"
        "    deadline = time.monotonic() + 60\n"
        "    while not any('Hidden' in type(f).__name__ for f in sys.meta_path) and time.monotonic() < deadline:\n"
        "        time.sleep(0.0005)\n"
        "    got['during'] = any('Hidden' in type(f).__name__ for f in sys.meta_path)\n"
        "    from sklearn import metrics\n"
        "    got['auc'] = metrics.roc_auc_score([0, 1, 1], [0.1, 0.8, 0.9])\n"
        "t = threading.Thread(target=other); t.start()\n"
        "from xgboost_core import xgb\n"
        "t.join()\n"
        "print(json.dumps({**got, 'booster': hasattr(xgb, 'Booster')}))"
    )
    assert seen == {"during": True, "auc": 1.0, "booster": True}
