"""How many weights a mask keeps at a sparsity: one rule for ``global_mask`` and for the config
checks, which run while the Snakefile parses (so torch-free)."""

from __future__ import annotations


def check_sparsity(sparsity: float) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:  # also rejects nan
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def kept_count(n: int, sparsity: float) -> int:
    """How many of ``n`` weights ``global_mask`` keeps (Python's round: half to even)."""
    return int(round(n * (1.0 - check_sparsity(sparsity))))
