"""Make the repository root importable, so ``examples.relying_party`` resolves under pytest.

``examples`` is not an installed package, and pytest puts only this directory on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[3])
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)
