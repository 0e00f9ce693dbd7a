"""The rules: every module in this package that defines a `Rule` subclass adds one.

A new rule is one file here (plus its fixtures and its runtime twin); nothing
else lists the rules.
"""

import importlib
import pkgutil

from .base import Rule

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

ALL_RULES = tuple(sorted((cls() for cls in Rule.__subclasses__()), key=lambda rule: rule.code))
RULES_BY_CODE = {rule.code: rule for rule in ALL_RULES}

__all__ = ["ALL_RULES", "RULES_BY_CODE", "Rule"]
