"""XGBoost's core (``Booster``, ``DMatrix``, ``train``) without its scikit-learn estimator layer.

``import xgboost`` imports scikit-learn when it is installed, for the ``XGBClassifier``-style wrappers
(``xgboost/compat.py``), and scikit-learn imports ``scipy.stats``: about 1.3 s of a 0.4 s import on this
project's 2-core reference machine, paid by every training job, every served model load and every
process that scores. The tabular steps use the core API only (``xgb.train``, ``Booster.predict``), so
:func:`import_xgboost` imports xgboost with scikit-learn hidden for the duration of that import: xgboost
then defines its wrappers on plain base classes, and nothing else changes. scikit-learn itself stays
importable afterwards (``evaluate.py`` uses its metrics). Loaded where xgboost was already imported (an
interactive session, a test process), it returns that module as it is.

The one thing that does not work in a process that imported xgboost here is xgboost's scikit-learn API
(``xgboost.XGBClassifier`` and friends, ``xgb.cv`` with ``stratified=True``), which no step uses.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def import_xgboost() -> ModuleType:
    """The ``xgboost`` module, imported without scikit-learn if this process has not imported either."""
    with _LOCK:
        if "xgboost" in sys.modules or "sklearn" in sys.modules:
            import xgboost

            return xgboost
        # A None entry makes `import sklearn` raise ImportError (the import system's documented behaviour),
        # which xgboost's compat module handles as "scikit-learn is not installed".
        sys.modules["sklearn"] = None  # type: ignore[assignment]
        try:
            import xgboost
        finally:
            if sys.modules.get("sklearn", ...) is None:
                del sys.modules["sklearn"]
        return xgboost


xgb = import_xgboost()
