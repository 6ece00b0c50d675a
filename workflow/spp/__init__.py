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

from spp.nets.initializers import INIT_SCHEMES, initialize
from spp.nets.models import ARCHITECTURES, build_model, prunable_parameters
from spp.pruning.masks import apply_mask, global_mask, layer_sparsity
from spp.pruning.scores import SCORE_METHODS, score
from spp.signal.isometry import approximate_isometry, orthogonality_score
from spp.signal.jacobian import jacobian_singular_values

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
