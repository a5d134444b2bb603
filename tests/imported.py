"""What importing some of archfleet's modules imports, in an interpreter of its own: for the tests that keep the
no-op sync's fast path light (tests/test_sync_early.py, tests/test_sync_noop_memo.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def modules_imported(*modules: str) -> set[str]:
    """Every module in ``sys.modules`` after importing ``modules`` in a fresh interpreter (-S: no .pth file of
    site-packages runs; the project comes from PYTHONPATH)."""
    code = f"import sys; import {', '.join(modules)}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-S", "-c", code], env={**os.environ, "PYTHONPATH": str(PROJECT)},
                            capture_output=True, text=True, check=True)
    return set(result.stdout.split())
