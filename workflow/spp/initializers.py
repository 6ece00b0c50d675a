"""Initialization schemes (placeholder: being written)."""

INIT_SCHEMES: tuple[str, ...] = ()


def initialize(model, scheme, seed, gamma=None):
    raise NotImplementedError
