"""Where a hook was registered, in a root's terms: the optimizer a step hook belongs to,
and the module whose parameters carry a gradient hook (`analysis.resolve` runs the hooks).
"""

from __future__ import annotations

from typing import Optional

from .. import recognise
from . import resolve as R
from .units import Scope, Unit


def _registering_unit(where, scope: Scope) -> Optional[Unit]:
    module = scope.unit.module
    return module.top if where is None else next((u for u in module.units if u.node is where), None)


def hooked_module(registered: str, where, scope: Scope) -> Optional[str]:
    """The module whose parameters a gradient hook was registered on, in scope's root terms:
    `for p in encoder.parameters(): p.register_post_accumulate_grad_hook(fn)` -> encoder."""
    owner = _registering_unit(where, scope)
    binding = owner.module.lookup(registered, owner) if owner is not None else None
    if binding is None or not binding.alias.endswith("[*]"):
        return None
    expr = R.expression(binding.alias[:-3])
    found = recognise.module_receivers(expr) if expr is not None else []
    return R.resolve(found[0], Scope(owner, (), 0, (owner.key,))).key if found else None


def registered_key(registered: str, where, scope: Scope) -> str:
    """The key, in scope's root terms, of the optimizer a hook was registered on: `self.opt`
    registered in a method of the class that steps it is that same object's optimizer; a
    name registered elsewhere is what it denotes where the registration runs."""
    owner = _registering_unit(where, scope)
    if owner is None:  # a registration in code the analysis left out: its name is all there is
        return R.resolve(registered, scope).key
    if registered.split(".", 1)[0] == "self" and owner.cls is not None and owner.cls == scope.unit.cls:
        return R.resolve(registered, scope).key
    return R.resolve(registered, Scope(owner, (), 0, (owner.key,))).key
