"""Make the repo's kube_cluster fixture (tests/k8s_cluster.py) available here."""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _p in (str(_REPO), str(_REPO / "cluster")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tests.k8s_cluster import kube_cluster  # noqa: E402, F401
