"""The first import of every script: this checkout's library on the path (the code the `code`
param hashes, whatever else the environment has installed), then `enter`, which runs the
script's body in a warm interpreter or in this process (spp.jobs). Imports no torch."""

import sys
from pathlib import Path

_WORKFLOW = str(Path(__file__).resolve().parents[1])
if sys.path[:1] != [_WORKFLOW]:  # first, even where Snakemake's preamble put it last
    sys.path[:] = [_WORKFLOW] + [p for p in sys.path if p != _WORKFLOW]

from spp.jobs import enter  # noqa: E402

__all__ = ["enter"]
