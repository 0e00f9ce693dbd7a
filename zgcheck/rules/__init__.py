"""The rules, by code."""

from .base import Finding, Rule, Site
from .missing_zero_grad import MissingZeroGrad
from .zero_grad_before_step import ZeroGradBeforeStep

ALL_RULES = (MissingZeroGrad(), ZeroGradBeforeStep())
RULES_BY_CODE = {rule.code: rule for rule in ALL_RULES}

__all__ = ["ALL_RULES", "RULES_BY_CODE", "Finding", "Rule", "Site"]
