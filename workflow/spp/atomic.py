"""Every result file is written atomically: to a temporary file beside it, then renamed.

A job killed mid-write (kill -9, a SLURM time limit, a full disk) leaves the old file or none,
never a half-written one that a rerun would take for finished. One function does the renaming;
the others say what to write. `load_tensors` is the one way back: a damaged or refused file is
named in its error (torch's own messages name no file).
"""

from __future__ import annotations

import errno
import json
import os
import resource
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
    except Exception as e:
        if (why := _no_room(tmp, e)) is None:
            raise
        raise OSError(errno.ENOSPC, f"{path}: not written, {why}; the file there before (if any) "
                      "is untouched and no partial file is left: free space and rerun") from e
    finally:
        tmp.unlink(missing_ok=True)
    return path


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _no_room(tmp: Path, err: BaseException) -> str | None:
    """Why a write failed for want of room (a full disk, a quota, a file-size limit), or None.
    Writers hide the cause: torch.save says "unexpected pos 704 vs 598" on a full disk."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    try:
        size = tmp.stat().st_size
        fs = os.statvfs(tmp.parent)
    except OSError:
        return None
    if fs.f_bavail * fs.f_frsize < max(size, 1 << 16):
        return "no space left on device"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and size >= limit:
        return f"file size limit of {limit} bytes reached (ulimit -f)"
    return None


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


_DAMAGED_FIX = ("results are written by the workflow, never by hand: delete it (or its stage "
                "folder) and rerun, Snakemake rebuilds it")


def _refusal(err: Exception) -> str:
    """The line of torch's weights_only refusal that says what was refused (its first lines
    are boilerplate and advise weights_only=False, which would run the file's code)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or ln.startswith("Unsupported"):
            return ln
    return lines[0] if lines else type(err).__name__


def load_tensors(path: str | os.PathLike, map_location="cpu"):
    """torch.load with weights_only=True (a results folder can never run code); a file it
    refuses, or one truncated or damaged, raises a ValueError naming the file and the fix."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: refused: not plain tensors and values ({_refusal(e)}); "
                         + _DAMAGED_FIX) from None
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 (whatever torch stumbles on: the file is damaged)
        what = str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: truncated or damaged ({what}); " + _DAMAGED_FIX) from None
