"""The training side of the model list: the functions a :class:`~model_registry.specs.ModelSpec` points at."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from model_registry.specs import ModelSpec, model_names, model_spec


def resolve(reference: str) -> Callable[..., Any]:
    """The function a ``module:function`` reference names; ValueError saying which part is missing."""
    module_name, _, function = reference.partition(":")
    if not module_name or not function:
        raise ValueError(f"{reference!r} is not a 'module:function' reference")
    try:
        found = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"the model list names {reference!r}, which cannot be loaded: {e}") from None
    if not callable(found):
        raise ValueError(f"{reference!r} is not a function")
    return found


__all__ = ["ModelSpec", "model_names", "model_spec", "resolve"]
