"""spp: pruning neural networks at initialization, from a signal-propagation perspective.

The library behind the Snakemake workflow; usable on its own::

    import spp
    model = spp.build_model("mlp-7-tanh", input_shape=(1, 28, 28), num_classes=10)
    spp.initialize(model, "orthogonal", seed=0)
    scores = spp.score(model, "snip", batches=data.batches("train", 100))
    mask = spp.global_mask(scores, sparsity=0.9)
    spp.apply_mask(model, mask)
    spp.approximate_isometry(model, mask)
"""

import importlib

# Names resolved on first use (PEP 562): `import spp.paths` or the Snakefile's parse-time
# imports must not load torch, which a controller that deploys each job's software lacks.
_WHERE = {
    "INIT_SCHEMES": "spp.nets.initializers",
    "initialize": "spp.nets.initializers",
    "ARCHITECTURES": "spp.nets.models",
    "build_model": "spp.nets.models",
    "prunable_parameters": "spp.nets.models",
    "apply_mask": "spp.pruning.masks",
    "global_mask": "spp.pruning.masks",
    "layer_sparsity": "spp.pruning.masks",
    "SCORE_METHODS": "spp.pruning.scores",
    "score": "spp.pruning.scores",
    "approximate_isometry": "spp.signal.isometry",
    "orthogonality_score": "spp.signal.isometry",
    "jacobian_singular_values": "spp.signal.jacobian",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'spp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])


__all__ = [
    "ARCHITECTURES",
    "INIT_SCHEMES",
    "SCORE_METHODS",
    "apply_mask",
    "approximate_isometry",
    "build_model",
    "global_mask",
    "initialize",
    "jacobian_singular_values",
    "layer_sparsity",
    "orthogonality_score",
    "prunable_parameters",
    "score",
]
