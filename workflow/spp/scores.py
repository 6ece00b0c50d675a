"""Pruning scores: one registry, so a new method plugs in without touching callers.

A score method is a function ``fn(model, batches, **options) -> {param_name: tensor}``
over the prunable parameters; higher means keep. Register it with ``@register("name")``
in any module imported below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch
from torch import nn

ScoreFn = Callable[..., dict[str, torch.Tensor]]
_REGISTRY: dict[str, ScoreFn] = {}


def register(name: str) -> Callable[[ScoreFn], ScoreFn]:
    def add(fn: ScoreFn) -> ScoreFn:
        if name in _REGISTRY:
            raise ValueError(f"score method {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return add


def score(
    model: nn.Module,
    method: str,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """Score every prunable weight of ``model`` with ``method``; higher means keep."""
    _load_methods()
    if method not in _REGISTRY:
        raise ValueError(
            f"unknown score method {method!r}; valid methods: {', '.join(sorted(_REGISTRY))}"
        )
    fn = _REGISTRY[method]
    from spp.models import prunable_parameters

    if not prunable_parameters(model):
        raise ValueError(f"{type(model).__name__} has no linear or conv layer: nothing to score "
                         "or prune")
    params = list(inspect.signature(fn).parameters.values())[2:]
    allowed = [p.name for p in params]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    unknown = sorted(set(options) - set(allowed))
    if unknown and not open_ended:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for score method {method!r}; "
            f"valid options: {', '.join(allowed) or 'none'}"
        )
    return fn(model, batches, **options)


def _load_methods() -> None:
    # Imported for their @register side effects; kept lazy so modules may import this one.
    import spp.grasp  # noqa: F401
    import spp.sensitivity  # noqa: F401
    import spp.synflow  # noqa: F401


def __getattr__(name: str):
    if name == "SCORE_METHODS":
        _load_methods()
        return tuple(sorted(_REGISTRY))
    raise AttributeError(name)
