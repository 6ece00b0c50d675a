"""Every result file is written atomically: to a temporary file beside it, then renamed.

A job killed mid-write (kill -9, a SLURM time limit, a full disk) leaves the old file or none,
never a half-written one that a rerun would take for finished. One function does the renaming;
the others say what to write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (same folder, same suffix, so a
    writer that picks its format from the suffix still can), then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # results are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json(obj, path: str | os.PathLike) -> Path:
    """JSON with one-space indent; Infinity / NaN as json.dump writes them."""
    return write_text(path, json.dumps(obj, indent=1))


def write_csv(df, path: str | os.PathLike) -> Path:
    """A pandas DataFrame as CSV, without its index."""
    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def save_tensors(obj, path: str | os.PathLike) -> Path:
    """torch.save of plain tensors and Python values (read back with weights_only=True)."""
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))
