"""ZG002 zero-grad-before-step."""

from __future__ import annotations

from typing import Optional

from ..types import Fact, Finding, Fix, Site
from .base import Edits, Facts, Rule, drop, line_of, preliminary, select

CODE = "ZG002"
_KINDS = ("unapplied", "wiped", "accumulated", "lost", "spent")


class ZeroGradBeforeStep(Rule):
    code = CODE
    name = "zero-grad-before-step"
    summary = "gradients are cleared between backward() and the step that should apply them"
    what = (
        "Checks for a zero (`optimizer.zero_grad()`, `model.zero_grad()`, ...) on a path from a\n"
        "`backward()` to the optimizer's `step()` with no other `backward()` in between, and for\n"
        "a zero that clears gradients being accumulated for a step that a loop counter skipped\n"
        "(`if i % k == 0: optimizer.step()` with the zero on every micro-batch)."
    )
    why = (
        "The step then applies empty (or None) gradients: the model never learns, while the\n"
        "loss is still computed and logged as if it did."
    )
    example = (
        "for x, y in loader:\n"
        "    loss = loss_fn(model(x), y)\n"
        "    loss.backward()\n"
        "    optimizer.zero_grad()\n"
        "    optimizer.step()\n"
    )
    use_instead = (
        "for x, y in loader:\n"
        "    loss = loss_fn(model(x), y)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
        "    optimizer.zero_grad()\n"
    )
    fix_safety = (
        "The fix moves the zero to just after the step. It is safe when both are in the\n"
        "function being fixed and the re-analysed code is clean; otherwise unsafe. Discarding\n"
        "a bad batch (`zero_grad(); continue` before the next backward) is not reported."
    )

    def message(self, finding: Finding) -> str:
        window = next((s for role, s in finding.related if role == "accumulate"), None)
        if window is not None:
            return (f"`{finding.site.text}` runs on every micro-batch inside `with {window.text}:` "
                    f"(line {line_of(window)}) and wipes the accumulated gradients before "
                    f"`{finding.step.text}` applies them; use the prepared optimizer's `zero_grad()`")
        accumulated = next((s for role, s in finding.related if role == "accumulated"), None)
        if accumulated is not None:
            return (f"`{finding.site.text}` wipes the gradients that `{accumulated.text}` (line "
                    f"{line_of(accumulated)}) accumulated for `{finding.step.text}` (line "
                    f"{line_of(finding.step)}), which a loop counter skips in this iteration")
        backward = next((s for role, s in finding.related if role == "backward"), None)
        wiped = f"the gradients of `{backward.text}` (line {line_of(backward)})" if backward else "the gradients"
        return (f"`{finding.site.text}` wipes {wiped} before "
                f"`{finding.step.text}` (line {line_of(finding.step)}) applies them")

    def on_backward(self, facts: Facts, site: Site, optimizers, proven=frozenset()) -> Facts:
        # Another backward before the step: a zero since then discarded a batch (clean),
        # unless what it cleared was being accumulated ("lost", kept).
        facts = facts.difference([f for f in facts if f.code == CODE and f.kind == "wiped"])
        return facts | {Fact(CODE, "unapplied", o, site) for o in optimizers}

    def on_step(self, facts: Facts, optimizer: str, site: Site, report) -> Facts:
        for kind, role in (("wiped", "backward"), ("lost", "accumulated")):
            for zero, backward in sorted(set(select(facts, CODE, kind, optimizer)),
                                         key=lambda zb: (zb[0].path, zb[0].span)):
                report(Finding(CODE, zero, ((role, backward), ("step", site)), optimizer, site))
        applied = set(select(facts, CODE, "unapplied", optimizer))
        for kind in _KINDS:
            facts = drop(facts, CODE, kind, [optimizer])
        # What this step applied, other optimizers never meant to accumulate (a GAN's G loss
        # reaching D): it is no window of theirs.
        spent = {Fact(CODE, "spent", f.optimizer, f.origin) for f in facts
                 if f.code == CODE and f.kind == "unapplied" and f.origin in applied}
        return facts | spent

    def on_zero(self, facts: Facts, optimizers, site: Site) -> Facts:
        optimizers = list(optimizers)
        wiped = {Fact(CODE, "wiped", o, (site, b)) for o in optimizers for b in select(facts, CODE, "unapplied", o)}
        lost = {Fact(CODE, "lost", o, (site, b)) for o in optimizers for b in select(facts, CODE, "accumulated", o)}
        for kind in ("unapplied", "accumulated", "spent"):
            facts = drop(facts, CODE, kind, optimizers)
        return facts | wiped | lost

    def on_window(self, facts: Facts, optimizers, into_next: bool) -> Facts:
        # Round to the next iteration of a loop whose step waits for a counter: the
        # gradients not applied yet are accumulated for it. Leaving the loop ends that
        # (a partial window at the end of an epoch is not this rule's business).
        optimizers = list(optimizers)
        if not into_next:
            return drop(facts, CODE, "accumulated", optimizers)
        return facts | {Fact(CODE, "accumulated", o, b) for o in optimizers for b in select(facts, CODE, "unapplied", o)
                        if b not in select(facts, CODE, "spent", o)}

    def fix(self, finding: Finding, edits: Edits) -> Optional[Fix]:
        if finding.step.path != finding.site.path:
            return None
        edit = edits.move_after(finding.site.span, finding.step.span)
        if edit is None:
            return None
        return Fix(f"Move `{finding.site.text}` after `{finding.step.text}`", preliminary(finding), edit)
