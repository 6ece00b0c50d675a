"""Pruning methods: the function of each method in ``spp.pruning.catalog``, and ``score``.

A score method is a function ``fn(model, batches, **options) -> {param_name: tensor}`` over the
prunable parameters; higher means keep. A new method is its entry in the catalog (its facts) and
a module of this package with the function under ``@register(name)``; `_load_methods` imports
every module here, so nothing else names it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch
from torch import nn

from spp.pruning.catalog import CONTEXT, Method, method_info, methods, needs_data

__all__ = ["CONTEXT", "Method", "method_info", "methods", "needs_data", "register", "score",
           "score_in_context"]

ScoreFn = Callable[..., dict[str, torch.Tensor]]
_FUNCTIONS: dict[str, ScoreFn] = {}


def register(name: str) -> Callable[[ScoreFn], ScoreFn]:
    """Bind ``fn`` to the catalog's method ``name``: its options must be the catalog's."""
    info = method_info(name)
    if info.after_training:
        raise ValueError(f"score method {name!r} scores with {info.base!r}'s function")

    def add(fn: ScoreFn) -> ScoreFn:
        if name in _FUNCTIONS:
            raise ValueError(f"score method {name!r} is registered twice")
        params = list(inspect.signature(fn).parameters.values())[2:]
        options = tuple(p.name for p in params
                        if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in CONTEXT)
        if options != info.options:
            raise ValueError(f"score method {name!r}: {fn.__name__} takes options {options}, "
                             f"spp.pruning.catalog says {info.options}")
        _FUNCTIONS[name] = fn
        return fn

    return add


def function(method: str) -> ScoreFn:
    """The function that scores ``method`` (a variant's: its base method's)."""
    base = method_info(method).base
    _load_methods()
    if base not in _FUNCTIONS:
        raise ValueError(f"score method {base!r} is in spp.pruning.catalog but no module of "
                         "spp.pruning registers its function")
    return _FUNCTIONS[base]


def score(
    model: nn.Module,
    method: str,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """Score every prunable weight of ``model`` with ``method``; higher means keep. ``options``
    are the method's options and any of its context values."""
    fn = function(method)
    from spp.nets.models import prunable_parameters

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


def score_in_context(model: nn.Module, method: str, *, batches: Callable[[], Iterable] | None,
                     context: dict, options: dict | None = None) -> dict[str, torch.Tensor]:
    """`score` as a pipeline calls it: the data only if the method reads it (``batches`` is a
    factory, so a data-free method never touches the data), and from ``context`` just the
    values the method takes. A missing one is named."""
    info = method_info(method)
    missing = [k for k in info.context if context.get(k) is None and k != "invert"]
    if missing:
        raise ValueError(f"score method {method!r} needs {missing} from its caller")
    data = batches() if info.needs_data and batches is not None else None
    taken = {k: context[k] for k in info.context if k in context}
    return score(model, info.base, batches=data, **taken, **(options or {}))


def _load_methods() -> None:
    # Every module of this package, for its @register side effects. Lazy, so that those modules
    # may import this one.
    import importlib
    import pkgutil

    import spp.pruning

    for m in pkgutil.iter_modules(spp.pruning.__path__):
        importlib.import_module(f"spp.pruning.{m.name}")


def __getattr__(name: str):
    if name == "SCORE_METHODS":
        return methods(after_training=False)
    raise AttributeError(name)
