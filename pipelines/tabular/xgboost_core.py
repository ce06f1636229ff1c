"""XGBoost's core (``Booster``, ``DMatrix``, ``train``) without its scikit-learn estimator layer.

``import xgboost`` imports scikit-learn when it is installed, for the ``XGBClassifier``-style wrappers
(``xgboost/compat.py``), and scikit-learn imports ``scipy.stats``: about 1.3 s of a 0.4 s import on this
project's 2-core reference machine, paid by every training job, every served model load and every
process that scores. The tabular steps use the core API only (``xgb.train``, ``Booster.predict``), so
:func:`import_xgboost` imports xgboost with scikit-learn hidden from that import: xgboost then defines
its wrappers on plain base classes, and nothing else changes. Only the importing thread is refused
scikit-learn (a finder on ``sys.meta_path`` for the duration), so another thread importing it at the
same moment gets it, and it stays importable afterwards (``evaluate``'s tests use it). Loaded where
xgboost or scikit-learn was already imported (an interactive session, a test process), it returns xgboost
as it is.

The one thing that does not work in a process that imported xgboost here is xgboost's scikit-learn API
(``xgboost.XGBClassifier`` and friends, ``xgb.cv`` with ``stratified=True``), which no step uses.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any


class _ScikitLearnHidden:
    """A meta path finder refusing ``sklearn`` (and its submodules) to one thread; others are not served."""

    def __init__(self, thread: int) -> None:
        self.thread = thread

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] == "sklearn" and threading.get_ident() == self.thread:
            # xgboost's compat module handles this as "scikit-learn is not installed".
            raise ModuleNotFoundError("scikit-learn is hidden while xgboost imports (xgboost_core)", name=fullname)
        return None  # any other module, or another thread: the normal finders decide


def import_xgboost() -> ModuleType:
    """The ``xgboost`` module, imported without scikit-learn if this process has not imported either."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        import xgboost

        return xgboost
    hidden = _ScikitLearnHidden(threading.get_ident())
    sys.meta_path.insert(0, hidden)
    try:
        import xgboost
    finally:
        sys.meta_path.remove(hidden)
    return xgboost


xgb = import_xgboost()
