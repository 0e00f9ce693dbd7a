"""Per-parameter gradient state, driven by the backward / step / zero events the
hooks report. Decides *stale* (ZG001), *wiped* (ZG002) and *foreign* (ZG003),
see DESIGN.md §7.

A parameter's gradient goes through these observations:
- a step of one of its optimizers with a non-zero `.grad` marks it *consumed*
  by that optimizer;
- seeing `.grad` None or all zero (at a backward, a zero call or a step) clears
  *consumed* and *stale*;
- a backward that finds it consumed and still non-zero marks it *stale*; the next
  step, by an optimizer that consumed it, that still finds it non-zero applied
  the leftover: ZG001 at that step;
- each backward that changes it is a *contribution*; a step consumes every
  contribution in its parameters' gradients. When a step of o finds, in one
  of its parameters, a contribution B1 that another optimizer's step already
  consumed, followed by a later contribution B2 (a backward for o), it
  applies B1 a second time: ZG003 at that step (also when the parameter is
  stale for o: ZG001's fix, a zero after the step, does not clear a B1 that
  comes after it);
- a backward that leaves a non-zero gradient marks it *pending*; a zero call that
  clears a pending gradient marks it *wiped* (remembering the call); a step that
  finds a pending/wiped gradient None or zero lost it: ZG002 at the wiping call
  (at the step when the clearing went unobserved, e.g. `p.grad = None`);
- a later backward that reaches any parameter of an optimizer forgives the wipes
  of that optimizer's parameters (discarding a bad batch is clean), unless the
  wiped gradient was *lost*: finite, and wiped by the loop's routine zero (a
  zero call site that also clears gradients a step already applied), from a
  backward no step has applied, so it was being accumulated for a step that had
  not come yet (a zero every micro-batch
  with a step every k): ZG002 at that zero, at the optimizer's next step;
- a gradient *overwritten* with new values (`p.grad.fill_(v)`, `p.grad.copy_(t)` on the
  whole gradient, or `p.grad = t` with a tensor that is not a rescaling of the old one)
  holds no leftover any more: *consumed*, *stale* and the contributions are cleared,
  but a pending gradient stays pending (nothing was wiped). The tracker keeps the
  gradient tensor it last saw (`seen`) to tell a replacement from its own events.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

import torch

from zgcheck.runtime.findings import Findings
from zgcheck.runtime.naming import ParamNamer
from zgcheck.runtime.sites import Site, current_site, user_frame

NONE, PENDING, WIPED = 0, 1, 2
# Contributions remembered per parameter, and backwards remembered in all: a
# gradient never cleared keeps no more (ZG001 is reported for it anyway).
_MAX_CONTRIBUTIONS = 16
_MAX_BACKWARDS = 1024
_NOBODY: FrozenSet[int] = frozenset()


class _State:
    __slots__ = (
        "ref", "consumed", "stale", "stale_by", "stale_site", "pending", "pending_norm", "wiper",
        "stale_reached", "backward_site", "nz_ref", "nz_version", "pre_grad", "pre_version",
        "contributions", "latest", "seen", "lost",
    )

    def __init__(self, ref: weakref.ref) -> None:
        self.ref = ref
        self.consumed = _NOBODY  # ids of the optimizers that stepped it
        self.stale: Optional[float] = None  # norm of the leftover found at a backward
        self.stale_by = _NOBODY  # who consumed that leftover
        self.stale_site: Optional[Site] = None
        self.stale_reached = False  # whether stale_site is a backward that added to it
        self.pending = NONE
        self.pending_norm = math.nan
        self.wiper: Optional[Site] = None
        self.backward_site: Optional[Site] = None
        # The grad tensor and version last verified non-zero: spares a pass over it.
        self.nz_ref: Optional[weakref.ref] = None
        self.nz_version = -1
        # The grad before the running backward, to tell whether it reached us.
        self.pre_grad: Optional[torch.Tensor] = None
        self.pre_version = -1
        # Serial numbers of the backwards in .grad since it was last cleared: the
        # first few, and the latest.
        self.contributions: Tuple[int, ...] = ()
        self.latest = 0
        # The gradient tensor as the tracker last left it (after a backward, a step, a
        # zero): another tensor in `.grad` later was put there by the user's code.
        self.seen: Optional[torch.Tensor] = None
        # A finite gradient a zero wiped, kept past the backward that forgave the wipe:
        # (zero, norm, the backward that made it).
        self.lost: Optional[Tuple[Optional[Site], float, Optional[Site]]] = None

    def overwritten(self) -> None:
        """New values in the gradient: no leftover of any step, no earlier contribution."""
        self.consumed = _NOBODY
        self.stale = None
        self.stale_by = _NOBODY
        self.stale_site = None
        self.contributions = ()

    def cleared(self) -> None:
        self.overwritten()
        if self.pending == PENDING:
            self.pending = WIPED  # by something we did not see: the step reports it


def _norm(grad: torch.Tensor) -> float:
    try:
        with torch.no_grad():
            values = grad.coalesce().values() if grad.is_sparse else grad
            return float(values.detach().float().norm())
    except Exception:  # exotic tensor types: the magnitude is only evidence
        return math.nan


# Elements looked at first: a real gradient almost always shows a non-zero there,
# which spares a full pass over the tensor.
_SAMPLE = 4096


def _values(grad: torch.Tensor) -> torch.Tensor:
    return grad.coalesce().values() if grad.is_sparse else grad


def _sample_nonzero(values: torch.Tensor) -> bool:
    return values.is_contiguous() and bool(values.view(-1)[:_SAMPLE].any())


def _any_nonzero(grad: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            values = _values(grad)
            if values.numel() == 0:
                return False
            if _sample_nonzero(values):
                return True
            low, high = torch.aminmax(values)  # several times faster than .any()
            return bool(low != 0) or bool(high != 0)
    except Exception:
        try:
            return bool(_values(grad).any())
        except Exception:  # exotic tensor types: assume it holds something
            return True


def _rescaled(old: torch.Tensor, new: torch.Tensor) -> bool:
    """Whether new is c * old for one scalar c (clipping, unscaling, `p.grad / n`), or shares
    old's storage: a gradient derived that way keeps whatever leftover old held. A single
    element, or an old gradient whose elements are all equal, is no evidence either way
    (any constant is a multiple of it): taken as new values."""
    try:
        with torch.no_grad():
            if new.untyped_storage().data_ptr() == old.untyped_storage().data_ptr():
                return True
            if new.shape != old.shape or old.numel() < 2 or new.is_sparse or old.is_sparse:
                return False
            a, b = old.detach().double().reshape(-1), new.detach().double().reshape(-1)
            norm = float(a.dot(a))
            if norm == 0 or bool((a == a[0]).all()):
                return False
            c = float(a.dot(b)) / norm
            return c != 0 and bool(torch.allclose(b, c * a, rtol=1e-4, atol=1e-12))
    except Exception:  # exotic tensor types: assume it was derived (keep the verdict)
        return True


def _zeroed(grad: Optional[torch.Tensor]) -> bool:
    """After torch's own zero_grad ran over it: None, or zero unless a glance says otherwise."""
    if grad is None:
        return True
    try:
        with torch.no_grad():
            return not _sample_nonzero(_values(grad))
    except Exception:
        return True


Entry = Tuple[_State, torch.Tensor]


class Tracker:
    def __init__(self) -> None:
        self.findings = Findings()
        self.counts: Counter = Counter()
        self.optimizers_seen = 0
        self.on_report: Optional[Callable[[], None]] = None  # called before each finding
        self._serial = 0  # of the last backward
        # Per recent backward: where it ran, and {id(optimizer): step site} of the
        # steps that consumed it.
        self._backward_sites: Dict[int, Optional[Site]] = {}
        self._consumers: Dict[int, Dict[int, Optional[Site]]] = {}
        self._namer = ParamNamer()
        self._routine: set = set()  # zero sites seen clearing gradients that a step applied
        self._optimizers: "weakref.WeakSet[torch.optim.Optimizer]" = weakref.WeakSet()
        self._states: Dict[int, _State] = {}
        # Storage address of each gradient the tracker saw -> its parameter (weak), so a
        # `p.grad.fill_(v)` (on `p.grad` or `p.grad.data`) is known for p's gradient.
        self._grads: Dict[int, "weakref.ref[torch.Tensor]"] = {}

    def reset_record(self) -> None:
        """Forget what was found and counted, keep the gradients' state: a forked
        child goes on from where its parent was, and reports only its own part."""
        self.findings = Findings()
        self.counts = Counter()
        self.optimizers_seen = 0

    # -- bookkeeping -------------------------------------------------------

    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if optimizer not in self._optimizers:
            self._optimizers.add(optimizer)
            self.optimizers_seen += 1

    def _state(self, param: torch.Tensor) -> _State:
        key = id(param)
        state = self._states.get(key)
        if state is None or state.ref() is not param:
            def forget(ref, key=key, states=self._states):
                if key in states and states[key].ref is ref:
                    del states[key]
            state = self._states[key] = _State(weakref.ref(param, forget))
        return state

    def _entries(self, params: Iterable[torch.Tensor]) -> List[Entry]:
        seen = set()
        out = []
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                out.append((self._state(p), p))
        return out

    def _optimizer_entries(self, optimizer) -> List[Entry]:
        return self._entries(p for group in optimizer.param_groups for p in group["params"])

    def _nonzero(self, state: _State, grad: torch.Tensor) -> bool:
        if state.nz_ref is not None and state.nz_ref() is grad and state.nz_version == grad._version:
            return True
        if _any_nonzero(grad):
            state.nz_ref, state.nz_version = weakref.ref(grad), grad._version
            return True
        return False

    def _observe(self, state: _State, grad: Optional[torch.Tensor]) -> bool:
        """True when `grad` is non-zero; a None/zero grad clears the state."""
        if grad is not None and self._nonzero(state, grad):
            return True
        state.cleared()
        return False

    # -- events ------------------------------------------------------------

    def before_backward(self) -> Tuple[List[Tuple[object, List[Entry]]], Optional[Site]]:
        self.counts["backward"] += 1
        site = current_site()
        self._serial += 1
        self._backward_sites[self._serial] = site
        old = self._serial - _MAX_BACKWARDS
        self._backward_sites.pop(old, None)
        self._consumers.pop(old, None)
        groups = [(opt, self._optimizer_entries(opt)) for opt in list(self._optimizers)]
        for state, param in self._unique(groups):
            grad = param.grad
            state.pre_grad = grad
            state.pre_version = grad._version if grad is not None else -1
            if grad is None:
                state.cleared()
                self._unsee(state)
                continue
            self._replaced(state, grad)
            self._see(state, param, grad)
            if (state.consumed or state.stale is not None or state.pending) and self._observe(state, grad):
                if state.consumed and state.stale is None:
                    state.stale, state.stale_site, state.stale_reached = _norm(grad), site, False
                    state.stale_by = state.consumed
        return groups, (site, self._serial)

    def after_backward(self, token) -> None:
        groups, (site, serial) = token
        reached = set()
        for state, param in self._unique(groups):
            grad, before = param.grad, state.pre_grad
            state.pre_grad = None
            if grad is None or (grad is before and grad._version == state.pre_version):
                continue
            if state.stale is not None and not state.stale_reached:
                state.stale_site, state.stale_reached = site, True
            self._see(state, param, grad)
            if self._nonzero(state, grad):
                reached.add(id(param))
                state.pending, state.wiper, state.backward_site = PENDING, None, site
                if len(state.contributions) < _MAX_CONTRIBUTIONS:
                    state.contributions += (serial,)
                state.latest = serial
        if not reached:
            return
        for _, entries in groups:
            if any(id(p) in reached for _, p in entries):
                for state, _ in entries:
                    if state.pending == WIPED:
                        state.pending, state.wiper = NONE, None

    @staticmethod
    def _unique(groups) -> List[Entry]:
        seen = set()
        out = []
        for _, entries in groups:
            for entry in entries:
                if id(entry[1]) not in seen:
                    seen.add(id(entry[1]))
                    out.append(entry)
        return out

    def before_zero(self, params: Iterable[torch.Tensor]):
        self.counts["zero"] += 1
        watched = []
        states = []
        for param in params:
            state = self._states.get(id(param))
            if state is None or state.ref() is not param:
                continue  # not a parameter of any optimizer
            states.append((state, param))
            if state.pending == PENDING and param.grad is not None:
                watched.append((state, param, _norm(param.grad)))
            elif state.consumed or state.stale is not None:
                watched.append((state, param, math.nan))
        return watched, states

    def after_zero(self, token) -> None:
        watched, states = token
        for state, param in states:  # set to None: the old tensor is not kept alive for the test
            if param.grad is None:
                self._unsee(state)
        # torch's zero_grad leaves every grad it covers None or zero: no full pass.
        site: Optional[Site] = None
        routine = False
        for state, param, norm in watched:
            if not _zeroed(param.grad):
                continue
            was_pending = state.pending == PENDING
            routine = routine or bool(state.consumed)
            state.cleared()
            if was_pending:
                if site is None:
                    site = current_site()
                state.wiper, state.pending_norm = site, norm
                # Not lost when another optimizer's step applied that backward (a GAN's G loss
                # reaching D): D never meant to accumulate it.
                kept = math.isfinite(norm) and norm > 0 and not self._consumers.get(state.latest)
                state.lost = (site, norm, state.backward_site) if kept else None
        if routine:
            self._routine.add(site or current_site())

    def count_step(self) -> None:
        self.counts["step"] += 1

    def on_step(self, optimizer: torch.optim.Optimizer, counted: bool = True) -> None:
        """The optimizer applies the parameters' current gradients now (`counted`
        False: a closure evaluation inside a step, counted by the step)."""
        if counted:
            self.counts["step"] += 1
        self.add_optimizer(optimizer)
        key = id(optimizer)
        stale: List[Tuple[torch.Tensor, float, Optional[Site]]] = []
        wiped: Dict[Optional[Site], List[Tuple[torch.Tensor, float, Optional[Site]]]] = {}
        foreign: List[Tuple[torch.Tensor, int, Optional[Site]]] = []
        applied: List[_State] = []  # consumed after the loop: a backward is judged as it was before
        for state, param in self._optimizer_entries(optimizer):
            grad = param.grad
            if grad is not None:
                self._replaced(state, grad)
                self._see(state, param, grad)
            nonzero = grad is not None and self._nonzero(state, grad)
            if state.stale is not None and nonzero and key in state.stale_by:
                stale.append((param, state.stale, state.stale_site))
            if nonzero and state.contributions:
                first = self._consumed_elsewhere(state, key)
                if first is not None:
                    foreign.append((param, first, state.backward_site))
            if state.pending and not nonzero:
                wiped.setdefault(state.wiper, []).append((param, state.pending_norm, state.backward_site))
            elif state.lost is not None and state.lost[0] in self._routine:
                zero, norm, made = state.lost
                wiped.setdefault(zero, []).append((param, norm, made))
            state.lost = None
            if not nonzero:
                state.consumed = _NOBODY
            elif key not in state.consumed:
                state.consumed = state.consumed | {key}
            if nonzero and state.contributions:
                applied.append(state)
            state.stale, state.stale_by, state.stale_site = None, _NOBODY, None
            state.pending, state.wiper, state.pending_norm = NONE, None, math.nan
        if applied:
            step_site = current_site()
            for state in applied:
                self._consume(state, key, step_site)
        if stale or wiped or foreign:
            self._report(stale, wiped, foreign, key)

    # -- gradients the user's code wrote ------------------------------------

    def _see(self, state: _State, param: torch.Tensor, grad: torch.Tensor) -> None:
        if state.seen is not grad:
            self._unsee(state)
            state.seen = grad
            try:
                self._grads[grad.untyped_storage().data_ptr()] = state.ref
            except Exception:  # no storage to find it by (sparse, exotic): replacements only
                pass

    def _unsee(self, state: _State) -> None:
        old, state.seen = state.seen, None
        if old is not None:
            try:
                ptr = old.untyped_storage().data_ptr()
            except Exception:
                return
            if self._grads.get(ptr) is state.ref:
                del self._grads[ptr]

    def _replaced(self, state: _State, grad: torch.Tensor) -> None:
        """`p.grad = t` since the tracker last saw p's gradient: new values unless t is
        the old gradient rescaled."""
        old = state.seen
        if old is not None and grad is not old and not _rescaled(old, grad):
            state.overwritten()

    def watches(self, tensor: torch.Tensor) -> bool:
        """Whether tensor may be (a view of) a tracked parameter's whole gradient: the cheap
        test run on every `fill_` / `copy_` before anything else is done."""
        try:
            return tensor.untyped_storage().data_ptr() in self._grads
        except Exception:
            return False

    def written(self, tensor: torch.Tensor, old: Optional[torch.Tensor]) -> None:
        """The user's code filled or copied into `tensor` (old: its values before a copy,
        None for a fill): if it is a parameter's whole gradient, that gradient holds new
        values unless the copy only rescaled it."""
        ref = self._grads.get(tensor.untyped_storage().data_ptr())
        param = ref() if ref is not None else None
        grad = param.grad if param is not None else None
        if grad is None or grad.data_ptr() != tensor.data_ptr() or grad.numel() != tensor.numel():
            return
        state = self._states.get(id(param))
        if state is not None and state.ref() is param and (old is None or not _rescaled(old, tensor)):
            state.overwritten()

    def _consumed_elsewhere(self, state: _State, key: int) -> Optional[int]:
        """The first contribution in the gradient that another optimizer's step
        already applied, and this one has not (then it is this optimizer's own
        leftover: ZG001), when a later backward added to it."""
        for serial in state.contributions:
            if serial >= state.latest:
                return None
            consumers = self._consumers.get(serial)
            if consumers and key not in consumers and any(other != key for other in consumers):
                return serial
        return None

    def _consume(self, state: _State, key: int, site: Optional[Site]) -> None:
        for serial in state.contributions + (state.latest,):
            consumers = self._consumers.get(serial)
            if consumers is None:
                if serial in self._backward_sites:
                    self._consumers[serial] = {key: site}
            elif key not in consumers:
                consumers[key] = site

    def _report(self, stale, wiped, foreign, key: int) -> None:
        if self.on_report is not None:
            self.on_report()
        step = current_site() or Site("<unknown>", 0)
        params = [p for p, _, _ in stale + foreign] + [p for found in wiped.values() for p, _, _ in found]
        if not self._namer.knows_all(params):
            self._namer.learn(user_frame())
        name = self._namer.name
        if stale:
            self.findings.add_stale(step, [(name(p), m) for p, m, _ in stale], stale[0][2])
        for zero, found in wiped.items():
            self.findings.add_wiped(zero, step, [(name(p), m) for p, m, _ in found], found[0][2])
        if foreign:
            _, first, later = foreign[0]
            other = next(site for k, site in self._consumers[first].items() if k != key)
            self.findings.add_foreign(step, [name(p) for p, _, _ in foreign],
                                      self._backward_sites.get(first), other, later)
