"""Installs the instrumentation on torch for the length of a `with` block, and
removes every patch and hook on the way out.

Every entry point runs outside torch.compile: once torch._dynamo is loaded, each
patch and hook is swapped for its `torch.compiler.disable`d form, so a compiled
function that calls backward, step or zero_grad breaks its graph there and runs
the checker eagerly instead of tracing into it.
"""

from __future__ import annotations

import functools
import logging
import threading
import traceback
from typing import Any, Callable, Iterator, List, Optional, Tuple

import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from zgcheck.runtime.boot import after_import, cancel_after_import
from zgcheck.runtime.tracker import Tracker

_active: Optional["Instrumentation"] = None

# A compiled optimizer step now breaks its graph at our step hook, inside the
# step's `record_function` block, and Dynamo says once that it ignores that
# profiler context: a line the user's code did not cause.
_PROFILER_LOGGER = "torch._dynamo.variables.ctx_manager"


def _not_our_profiler_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Profiler record function")


def _optimizer_params(optimizer) -> Iterator[torch.Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]


def _closure(args: Tuple[Any, ...], kwargs: dict) -> Any:
    # args holds the optimizer itself first.
    return args[1] if len(args) > 1 else kwargs.get("closure")


class Instrumentation:
    """`with Instrumentation(tracker):` reports every backward, step and zero to it.

    Errors raised by the tracker never reach the user's script: they are kept in
    `errors` (formatted tracebacks) for the caller to report.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.errors: List[str] = []
        self._local = threading.local()
        # (owner, attribute, original, installed)
        self._patches: List[Tuple[object, str, object, Callable]] = []
        self._handles: list = []
        self._inherited: dict = {}  # id(class) -> names patched that the class only inherited
        self._shielded = False

    # -- install / uninstall ----------------------------------------------

    def __enter__(self) -> "Instrumentation":
        global _active
        if _active is not None:
            raise RuntimeError("zgcheck.runtime instrumentation is already installed")
        _active = self
        try:
            self._install()
        except BaseException:
            self._uninstall()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._uninstall()

    def _install(self) -> None:
        self._patch(torch.Tensor, "backward", self._around_backward)
        self._patch(torch.autograd, "backward", self._around_backward)
        self._patch(torch.optim.Optimizer, "__init__", self._after_init)
        self._patch(torch.optim.Optimizer, "zero_grad", self._around_zero(_optimizer_params, True))
        self._patch(torch.nn.Module, "zero_grad", self._around_zero(lambda m: m.parameters(), False))
        self._patch(torch.Tensor, "fill_", self._around_write(copies=False))
        self._patch(torch.Tensor, "copy_", self._around_write(copies=True))
        self._register_hooks(self._pre_step, self._post_step)
        after_import("torch._dynamo", self._shield)

    def _register_hooks(self, pre: Callable, post: Callable) -> None:
        while self._handles:
            self._handles.pop().remove()
        self._handles.append(register_optimizer_step_pre_hook(pre))
        self._handles.append(register_optimizer_step_post_hook(post))

    def _shield(self) -> None:
        if _active is not self or self._shielded:
            return
        self._shielded = True
        disable = torch.compiler.disable
        for i, (owner, name, original, installed) in enumerate(self._patches):
            shielded = disable(installed)
            setattr(owner, name, shielded)
            self._patches[i] = (owner, name, original, shielded)
        self._register_hooks(disable(self._pre_step), disable(self._post_step))
        logging.getLogger(_PROFILER_LOGGER).addFilter(_not_our_profiler_notice)

    def _uninstall(self) -> None:
        global _active
        cancel_after_import("torch._dynamo", self._shield)
        logging.getLogger(_PROFILER_LOGGER).removeFilter(_not_our_profiler_notice)
        while self._handles:
            self._handles.pop().remove()
        while self._patches:
            owner, name, original, _ = self._patches.pop()
            if name in self._inherited.get(id(owner), ()):
                delattr(owner, name)  # it was the base class's: leave no copy behind
            else:
                setattr(owner, name, original)
        if _active is self:
            _active = None

    def _patch(self, owner: object, name: str, make: Callable[[Callable], Callable]) -> None:
        original = getattr(owner, name)
        if isinstance(owner, type) and name not in owner.__dict__:
            self._inherited.setdefault(id(owner), set()).add(name)
        installed = functools.wraps(original)(make(original))
        setattr(owner, name, installed)
        self._patches.append((owner, name, original, installed))

    # -- shared helpers ----------------------------------------------------

    def _safely(self, fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            self.errors.append(traceback.format_exc())
            return None

    def _depth(self, name: str) -> int:
        return getattr(self._local, name, 0)

    def _enter(self, name: str, delta: int) -> None:
        setattr(self._local, name, self._depth(name) + delta)

    # -- wrappers ----------------------------------------------------------

    def _around_backward(self, original: Callable) -> Callable:
        # Tensor.backward calls torch.autograd.backward, and checkpointing runs
        # backward inside backward: only the outermost call is an event.
        def backward(*args: Any, **kwargs: Any) -> Any:
            if self._depth("backward"):
                return original(*args, **kwargs)
            self._enter("backward", 1)
            try:
                token = self._safely(self.tracker.before_backward)
                try:
                    return original(*args, **kwargs)
                finally:
                    if token is not None:
                        self._safely(self.tracker.after_backward, token)
            finally:
                self._enter("backward", -1)

        return backward

    def _around_zero(self, params_of: Callable, is_optimizer: bool) -> Callable[[Callable], Callable]:
        def make(original: Callable) -> Callable:
            def zero_grad(owner: Any, *args: Any, **kwargs: Any) -> Any:
                if self._depth("zero"):
                    return original(owner, *args, **kwargs)
                self._enter("zero", 1)
                try:
                    if is_optimizer:
                        self._safely(self.tracker.add_optimizer, owner)
                    token = self._safely(self.tracker.before_zero, params_of(owner))
                    try:
                        return original(owner, *args, **kwargs)
                    finally:
                        if token is not None:
                            self._safely(self.tracker.after_zero, token)
                finally:
                    self._enter("zero", -1)

            return zero_grad

        return make

    def _around_write(self, copies: bool) -> Callable[[Callable], Callable]:
        # `p.grad.fill_(v)` / `p.grad.copy_(t)` by the user's code: the gradient then holds
        # new values. Every fill_/copy_ passes here; only one on a gradient the tracker
        # saw (a dict lookup by storage) costs more.
        def make(original: Callable) -> Callable:
            def write(tensor: Any, *args: Any, **kwargs: Any) -> Any:
                if self._depth("backward") or self._depth("zero") or self._depth("write") or \
                        not self.tracker.watches(tensor):
                    return original(tensor, *args, **kwargs)
                self._enter("write", 1)
                try:
                    old = self._safely(lambda: tensor.detach().clone()) if copies else None
                    result = original(tensor, *args, **kwargs)
                    if not copies or old is not None:
                        self._safely(self.tracker.written, tensor, old)
                    return result
                finally:
                    self._enter("write", -1)

            return write

        return make

    def _after_init(self, original: Callable) -> Callable:
        def __init__(optimizer: Any, *args: Any, **kwargs: Any) -> None:
            original(optimizer, *args, **kwargs)
            self._safely(self.tracker.add_optimizer, optimizer)

        return __init__

    # A step given a closure computes its gradients inside the step, and LBFGS
    # calls it up to max_iter times per step, reading the gradients after each
    # call: each evaluation is judged as a step of its own.
    def _pre_step(self, optimizer: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        closure = _closure(args, kwargs)
        if closure is None:
            self._safely(self.tracker.on_step, optimizer)
            return None
        judged = self._judged_closure(optimizer, closure)
        if len(args) > 1:
            return (args[0], judged, *args[2:]), kwargs
        return args, {**kwargs, "closure": judged}

    def _post_step(self, optimizer: Any, args: Tuple[Any, ...], kwargs: dict) -> None:
        if _closure(args, kwargs) is not None:
            self._safely(self.tracker.count_step)

    def _judged_closure(self, optimizer: Any, closure: Callable) -> Callable:
        @functools.wraps(closure)
        def evaluation(*args: Any, **kwargs: Any) -> Any:
            loss = closure(*args, **kwargs)
            self._safely(self.tracker.on_step, optimizer, False)
            return loss

        return evaluation
