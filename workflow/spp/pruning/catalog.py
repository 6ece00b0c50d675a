"""Every pruning method and ablation by name, with the facts the workflow plans with.

Torch-free on purpose: the Snakefile builds its DAG and checks a config from these facts while it
parses, in a controller that may have Snakemake alone (the jobs get torch through the software
Snakemake deploys). The functions live in the other modules of this package, each bound to its
entry here by ``spp.pruning.scores.register``, which checks that the two agree.

The facts: whether the method reads the scoring data (else its mask is the same on any dataset,
and the score stage gets no data); which per-run values the caller must supply (``context``: a
seed, the target sparsity, the input shape, the inversion ablation); the keyword options a user
may set; whether it scores trained weights (``after_training``: a variant of the method ``base``
at initialization).
"""

from __future__ import annotations

from dataclasses import dataclass

CONTEXT = ("seed", "sparsity", "input_shape", "invert")  # per-run values a caller can supply
# Frankle et al.'s mask ablations (spp.pruning.ablations); "none" trains the mask as it is.
ABLATIONS: tuple[str, ...] = ("none", "shuffle", "reinit", "invert")


@dataclass(frozen=True)
class Method:
    name: str
    needs_data: bool
    context: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    after_training: bool = False
    base: str = ""  # the method whose function scores (itself, or a variant's method at init)

    def __post_init__(self):
        bad = sorted(set(self.context) - set(CONTEXT))
        if bad:
            raise ValueError(f"score method {self.name!r}: unknown context {bad}; valid: {CONTEXT}")
        if not self.base:
            object.__setattr__(self, "base", self.name)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("snip", needs_data=True, options=("loss",)),
        Method("grasp", needs_data=True, options=("temperature", "bn_mode", "max_batches")),
        Method(
            "synflow",
            needs_data=False,
            context=("sparsity", "input_shape", "invert"),
            options=("iterations", "double"),
        ),
        Method("magnitude", needs_data=False),
        Method("random", needs_data=False, context=("seed",)),
        Method("magnitude-after-training", needs_data=False, after_training=True, base="magnitude"),
    )
}


def methods(after_training: bool | None = None) -> tuple[str, ...]:
    """Method names (``after_training``: only those scoring trained / initial weights), sorted."""
    wanted = [m for m in METHODS.values() if after_training in (None, m.after_training)]
    return tuple(sorted(m.name for m in wanted))


def method_info(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown score method {name!r}; valid methods: {', '.join(methods())}")
    return METHODS[name]


def needs_data(method: str) -> bool:
    return method_info(method).needs_data
