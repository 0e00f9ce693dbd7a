"""ZG001 missing-zero-grad."""

from __future__ import annotations

from typing import Optional

from ..types import Applicability, Fact, Finding, Fix, Site
from .base import Edits, Facts, Rule, drop, line_of, preliminary, select

CODE = "ZG001"


class MissingZeroGrad(Rule):
    code = CODE
    name = "missing-zero-grad"
    summary = "optimizer step applies gradients left over from its previous step"
    what = (
        "Checks that between one `step()` of an optimizer and the next, its gradients are\n"
        "cleared (`optimizer.zero_grad()`, `model.zero_grad()` on the model it optimizes,\n"
        "or `p.grad = None` for every parameter) before the `backward()` that feeds the next step."
    )
    why = (
        "`backward()` adds into `param.grad`; nothing clears it unless the code does. Without\n"
        "a zero, every step applies the sum of all earlier gradients: training silently\n"
        "diverges or crawls, and nothing crashes."
    )
    example = (
        "for x, y in loader:\n"
        "    loss = loss_fn(model(x), y)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
    )
    use_instead = (
        "for x, y in loader:\n"
        "    optimizer.zero_grad()\n"
        "    loss = loss_fn(model(x), y)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
    )
    fix_safety = (
        "The fix inserts `<optimizer>.zero_grad()` right after the step (after\n"
        "`scaler.update()` when it follows `scaler.step(optimizer)`), which is also correct\n"
        "for gradient accumulation; for `step(closure)`, at the top of the closure (LBFGS\n"
        "evaluates it several times per step, so a zero after the step is not enough).\n"
        "It is safe when the step is in the function that holds the loop and the\n"
        "re-analysed code is clean; otherwise unsafe (`--unsafe-fixes`)."
    )

    def message(self, finding: Finding) -> str:
        backward = _nearest_backward(finding)
        tail = f" and `{backward.text}` (line {line_of(backward)})" if backward else ""
        return (f"`{finding.site.text}` applies gradients left over from its previous step: "
                f"no `{finding.optimizer}.zero_grad()` between that step{tail}")

    def on_backward(self, facts: Facts, site: Site, optimizers, proven=frozenset()) -> Facts:
        # A backward that provably does not reach o's parameters leaves o's gradients alone.
        reached = set(optimizers)
        consumed = {f.optimizer for f in facts if f.code == CODE and f.kind == "consumed"}
        return facts | {Fact(CODE, "stale", o, site) for o in consumed if o in reached}

    def on_step(self, facts: Facts, optimizer: str, site: Site, report) -> Facts:
        stale = select(facts, CODE, "stale", optimizer)
        if stale:
            previous = select(facts, CODE, "consumed", optimizer)
            related = tuple(("backward", s) for s in sorted(set(stale), key=_order))
            related += tuple(("previous step", s) for s in sorted(set(previous), key=_order))
            report(Finding(CODE, site, related, optimizer, site))
        facts = drop(drop(facts, CODE, "stale", [optimizer]), CODE, "consumed", [optimizer])
        return facts | {Fact(CODE, "consumed", optimizer, site)}

    def on_zero(self, facts: Facts, optimizers, site: Site) -> Facts:
        return drop(drop(facts, CODE, "stale", optimizers), CODE, "consumed", optimizers)

    def on_overwrite(self, facts: Facts, optimizers, site: Site) -> Facts:
        return self.on_zero(facts, optimizers, site)  # the leftovers are replaced

    def fix(self, finding: Finding, edits: Edits) -> Optional[Fix]:
        step = finding.step
        closure = step.closure
        if closure is not None and closure.path == step.path:
            # The closure is evaluated before (LBFGS: several times in) each step: its
            # first statement is where every evaluation starts from clean gradients.
            code = f"{closure.receiver}.zero_grad()"
            edit = edits.insert_before(closure.span, code)
            if edit is not None:
                return Fix(f"Insert `{code}` at the top of the step's closure", preliminary(finding), (edit,))
        if not step.receiver:
            return None  # a step through an alias (`step_fn()`): no receiver to zero by name
        # After this step, and after every earlier step whose gradients this one may apply
        # again (the other branch of an if/else): each leaves its gradients behind.
        previous = sorted({s for role, s in finding.related if role == "previous step"
                           and s.path == step.path and s.receiver and s.span != step.span}, key=_order)
        own = _zero_after(step, edits)
        if own is None:
            return None
        made = [own[0]]
        for site in previous:
            found = _zero_after(site, edits)
            if found is not None and found[0] not in made:
                made.append(found[0])
        safety = preliminary(finding)
        if any(not s.root for s in previous):
            safety = min(safety, Applicability.UNSAFE)
        more = f" and after {len(made) - 1} earlier step{'s' * (len(made) > 2)}" if len(made) > 1 else ""
        return Fix(f"Insert `{step.receiver}.zero_grad()` after `{own[1]}`{more}", safety, tuple(made))


def _zero_after(step: Site, edits: Edits):
    """(the edit inserting `<receiver>.zero_grad()` after the step, the statement it follows)."""
    anchor, after = step.span, step.text
    following = edits.next_statement(step.span) if step.scaler else None
    if following is not None and following[0] == f"{step.scaler}.update()":
        anchor, after = following[1], following[0]  # the scaler updates before the zero
    edit = edits.insert_after(anchor, f"{step.receiver}.zero_grad()")
    return (edit, after) if edit is not None else None


def _nearest_backward(finding: Finding):
    """The backward closest before the step (the one a reader looks for), else the last."""
    backwards = [s for role, s in finding.related if role == "backward"]
    before = [s for s in backwards if s.path == finding.site.path and s.span < finding.site.span]
    return (before or backwards or [None])[-1]


def _order(site: Site):
    return (site.path, site.span)
