"""Which runs the Frankle et al. (2021) experiment has: its methods and their ablations, by name.

Torch-free, because the Snakefile expands the grid and checks the config's names while it parses
(``spp.pruning.catalog`` says why); the runs themselves are ``spp.frankle.runs``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spp.pruning.catalog import ABLATIONS, method_info, methods

# Every pruning method can run here (the loop supplies any context a method takes): the paper's
# six in its order (figures, legends), then any other, by name.
PAPER_METHODS = ("snip", "grasp", "synflow", "magnitude", "magnitude-after-training", "random")
METHODS: tuple[str, ...] = tuple(
    sorted(methods(), key=lambda m: (PAPER_METHODS.index(m) if m in PAPER_METHODS else 99, m))
)
UNABLATED = ("random",)  # shuffling or inverting random scores is random pruning again
# The methods at initialization whose ablations the paper tests.
AT_INIT = tuple(
    m for m in PAPER_METHODS if not method_info(m).after_training and m not in UNABLATED
)


def check_names(methods: Iterable[str], ablations: Iterable[str]) -> None:
    """ValueError naming any unknown method or ablation, with the valid names."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown Frankle method(s) {bad}; valid: {', '.join(METHODS)}")
    bad = [a for a in ablations if a not in ABLATIONS]
    if bad:
        raise ValueError(f"unknown ablation(s) {bad}; valid: {', '.join(ABLATIONS)}")


def ablations_for(method: str, ablations: Sequence[str]) -> list[str]:
    """The ablations run for ``method`` (``random`` only unablated)."""
    return ["none"] if method in UNABLATED else list(ablations)
