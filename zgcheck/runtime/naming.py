"""Best-effort names for parameters, found from the modules the user's frames hold."""

from __future__ import annotations

import warnings
import weakref
from types import FrameType, ModuleType
from typing import Dict, Iterable, Optional, Tuple

import torch

from zgcheck.runtime.sites import is_user_file

# Frames looked at, innermost first: enough for a loop inside a helper or a method.
_MAX_FRAMES = 8


class ParamNamer:
    """Maps id(param) -> "model.fc1.weight", learnt lazily from user frames."""

    def __init__(self) -> None:
        self._names: Dict[int, Tuple[weakref.ref, str]] = {}

    def learn(self, frame: Optional[FrameType]) -> None:
        # Reading attributes of the user's objects must not show the user
        # deprecation warnings their own code never triggered.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._learn_frames(frame)

    def _learn_frames(self, frame: Optional[FrameType]) -> None:
        seen = 0
        while frame is not None and seen < _MAX_FRAMES:
            if is_user_file(frame.f_code.co_filename):
                seen += 1
                for var, value in list(frame.f_locals.items()):
                    self._learn_value(var, value)
            frame = frame.f_back

    def _learn_value(self, var: str, value: object) -> None:
        if isinstance(value, torch.nn.Module):
            self._learn_module(var, value)
        elif isinstance(value, (torch.optim.Optimizer, type, ModuleType)):
            return  # a module's attributes are its API, not the user's models
        elif var == "self" or not var.startswith("_"):
            # One level into plain objects: `self.model`, `trainer.net`.
            for attr, inner in list(getattr(value, "__dict__", {}).items()):
                if isinstance(inner, torch.nn.Module):
                    self._learn_module(f"{var}.{attr}", inner)

    def _learn_module(self, prefix: str, module: torch.nn.Module) -> None:
        for name, param in module.named_parameters():
            if self._lookup(param) is None:
                self._names[id(param)] = (weakref.ref(param), f"{prefix}.{name}")

    def _lookup(self, param: torch.Tensor) -> Optional[str]:
        entry = self._names.get(id(param))
        # An id can be reused once its parameter is gone.
        return entry[1] if entry is not None and entry[0]() is param else None

    def knows_all(self, params: Iterable[torch.Tensor]) -> bool:
        return all(self._lookup(p) is not None for p in params)

    def name(self, param: torch.Tensor) -> str:
        known = self._lookup(param)
        if known is not None:
            return known
        return "parameter of shape (" + ", ".join(str(d) for d in param.shape) + ")"
