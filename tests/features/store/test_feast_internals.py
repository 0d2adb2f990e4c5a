"""Feast's private functions used by the online store and the API's reader are pinned: a Feast upgrade that changes
one of them fails here, by name, instead of failing (or silently misreading) in production."""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
from pathlib import Path

import feast
import pytest

from features.store import feast_internals

STORE_MODULES = [Path(feast_internals.__file__).with_name(n)
                 for n in ("online_reader.py", "online_writer.py", "sqlite_online.py")]


def _resolve(target: str):
    module, qualified = target.split(":")
    found = importlib.import_module(module)
    for part in qualified.split("."):
        found = getattr(found, part, None)
        if found is None:
            pytest.fail(f"Feast {feast.__version__} no longer has {target}: adapt features/store/feast_internals.py")
    return found


@pytest.mark.parametrize("target", sorted(feast_internals.PINNED))
def test_a_pinned_feast_function_is_unchanged(target: str) -> None:
    parameters, fingerprint = feast_internals.PINNED[target]
    found = _resolve(target)
    assert tuple(inspect.signature(found).parameters) == parameters, (
        f"Feast {feast.__version__} changed the parameters of {target}: adapt its wrapper in feast_internals.py")
    source = hashlib.sha256(inspect.getsource(found).encode()).hexdigest()[:16]
    assert source == fingerprint, (
        f"Feast {feast.__version__} changed the code of {target} (fingerprint {source}, pinned {fingerprint}): read "
        "the new code, adapt its wrapper in feast_internals.py if needed, then record the new fingerprint in PINNED")


def test_the_installed_feast_is_the_pinned_one() -> None:
    assert feast.__version__.startswith(feast_internals.FEAST_VERSION), (
        f"Feast {feast.__version__} is installed; the private functions were pinned for "
        f"{feast_internals.FEAST_VERSION}: run this file's tests and update FEAST_VERSION")


def test_the_lean_store_overrides_the_hook_feast_calls() -> None:
    from feast.infra.online_stores.online_store import OnlineStore

    from features.store.sqlite_online import LeanSqliteOnlineStore

    hook = feast_internals.READ_FEATURES_HOOK
    assert hook in vars(OnlineStore), f"Feast's OnlineStore has no {hook} any more: the lean store's override is dead"
    assert hook in vars(LeanSqliteOnlineStore)
    caller = inspect.getsource(OnlineStore.get_online_features)
    assert f"self.{hook}(" in caller, f"Feast's get_online_features no longer calls {hook}"


def test_only_the_adapter_touches_feast_privates() -> None:
    """The store modules import no underscore name from Feast and reach no underscore attribute of anything but
    themselves (``self``): whatever they need from Feast's internals goes through the adapter."""
    for path in STORE_MODULES:
        tree = ast.parse(path.read_text())
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("feast"):
                found += [f"import {a.name}" for a in node.names if a.name.startswith("_")]
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{ast.unparse(node.value)}.{node.attr}")
        assert not found, f"{path.name} uses private names {found}: go through features/store/feast_internals.py"
