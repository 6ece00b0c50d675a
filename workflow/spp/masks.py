"""Masks (placeholder: being written)."""


def global_mask(scores, sparsity):
    raise NotImplementedError


def apply_mask(model, mask):
    raise NotImplementedError


def layer_sparsity(mask):
    raise NotImplementedError
