"""The decoder contract of `pcll conformance`: python3 -m pcll.conformance ARTIFACT OUTDIR.

Writes OUTDIR/<index>.bin (each tensor in its logical dtype, little-endian) and exits 0, or
prints one line and exits 1 when the artifact is invalid."""

import sys
from pathlib import Path

from . import Artifact, PcllError


def main(argv):
    if len(argv) != 3:
        print("usage: python3 -m pcll.conformance ARTIFACT OUTDIR", file=sys.stderr)
        return 2
    try:
        art = Artifact(argv[1])
        out = Path(argv[2])
        for i, name in enumerate(art):
            (out / f"{i}.bin").write_bytes(art.logical_bytes(name))
    except (PcllError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
