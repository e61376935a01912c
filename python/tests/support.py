"""What the Python tests share: the repository root and the `pcll` package (the installed one,
else the source tree's, which then runs on the ctypes loader alone)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

try:
    import pcll
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))
    import pcll  # noqa: E402


def require_native(case):
    """Skips a test of the native module where it is not built, or fails it where it must be
    (PCLL_REQUIRE_NATIVE=1, as .ci/run sets)."""
    if pcll.native:
        return
    msg = "the native module is not built (pip install ./python)"
    if os.environ.get("PCLL_REQUIRE_NATIVE"):
        case.fail(msg)
    case.skipTest(msg)
