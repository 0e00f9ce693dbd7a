"""ZG003 another-optimizers-loss."""

from __future__ import annotations

from typing import Optional

from ..types import Fact, Finding, Fix, Site
from .base import Edits, Facts, Rule, drop, line_of, optimizer_of, preliminary, select

CODE = "ZG003"


class AnotherOptimizersLoss(Rule):
    code = CODE
    name = "another-optimizers-loss"
    summary = "optimizer step applies gradients that another optimizer's loss wrote into its parameters"
    what = (
        "Checks that a step does not apply gradients from a backward meant for another optimizer:\n"
        "a backward that reaches both optimizers' models, stepped by the other optimizer, then a\n"
        "second backward for this optimizer with no zero of its gradients in between."
    )
    why = (
        "`backward()` writes into every parameter its loss depends on. When a GAN's discriminator\n"
        "loss is computed on generator output that was not detached (or two heads share a trunk),\n"
        "the generator's gradients already hold the discriminator loss's contribution when the\n"
        "generator's own backward adds to them: its step applies both, silently."
    )
    example = (
        "netG, netD = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)\n"
        "opt_g = torch.optim.Adam(netG.parameters())\n"
        "opt_d = torch.optim.Adam(netD.parameters())\n"
        "for x in loader:\n"
        "    opt_d.zero_grad()\n"
        "    opt_g.zero_grad()\n"
        "    fake = netG(x)\n"
        "    d_loss = netD(fake).mean()\n"
        "    d_loss.backward()\n"
        "    opt_d.step()\n"
        "    g_loss = -netD(fake).mean()\n"
        "    g_loss.backward()\n"
        "    opt_g.step()\n"
    )
    use_instead = (
        "netG, netD = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)\n"
        "opt_g = torch.optim.Adam(netG.parameters())\n"
        "opt_d = torch.optim.Adam(netD.parameters())\n"
        "for x in loader:\n"
        "    opt_d.zero_grad()\n"
        "    fake = netG(x)\n"
        "    d_loss = netD(fake.detach()).mean()\n"
        "    d_loss.backward()\n"
        "    opt_d.step()\n"
        "    opt_g.zero_grad()\n"
        "    g_loss = -netD(fake).mean()\n"
        "    g_loss.backward()\n"
        "    opt_g.step()\n"
    )
    fix_safety = (
        "The fix inserts `<optimizer>.zero_grad()` right before the second backward when that\n"
        "backward and the step are in the function being fixed; it is safe only when the\n"
        "re-analysed code is clean. Detaching the other loss's input is often the better fix,\n"
        "and is left to you."
    )

    def message(self, finding: Finding) -> str:
        roles = dict(finding.related)
        first, other, second = roles["backward"], roles["other step"], roles["next backward"]
        return (f"`{finding.site.text}` applies gradients that `{first.text}` (line {line_of(first)}) "
                f"wrote into its parameters for `{other.text}` (line {line_of(other)}): "
                f"`{second.text}` (line {line_of(second)}) adds to them with no "
                f"`{finding.optimizer}.zero_grad()` in between")

    def on_backward(self, facts: Facts, site: Site, optimizers, proven=frozenset()) -> Facts:
        armed = {Fact(CODE, "armed", o, (first, other, site))
                 for o in proven for first, other in select(facts, CODE, "foreign", o)}
        return facts | armed | {Fact(CODE, "pending", o, site) for o in proven}

    def on_step(self, facts: Facts, optimizer: str, site: Site, report) -> Facts:
        for first, other, second in sorted(set(select(facts, CODE, "armed", optimizer)), key=_order):
            related = (("backward", first), ("other step", other), ("next backward", second))
            report(Finding(CODE, site, related, site.target, site))
        # What this step applied, it applied for itself: in another optimizer's gradients,
        # the same backward's contribution is now foreign.
        applied = set(select(facts, CODE, "pending", optimizer))
        foreign = {Fact(CODE, "foreign", f.optimizer, (f.origin, site)) for f in facts
                   if f.code == CODE and f.kind == "pending" and f.origin in applied
                   and optimizer_of(f.optimizer) != site.target}
        for kind in ("pending", "foreign", "armed"):
            facts = drop(facts, CODE, kind, [optimizer])
        return facts | foreign

    def on_zero(self, facts: Facts, optimizers, site: Site) -> Facts:
        optimizers = list(optimizers)
        for kind in ("pending", "foreign", "armed"):
            facts = drop(facts, CODE, kind, optimizers)
        return facts

    def on_overwrite(self, facts: Facts, optimizers, site: Site) -> Facts:
        return self.on_zero(facts, optimizers, site)  # the leftovers are replaced

    def fix(self, finding: Finding, edits: Edits) -> Optional[Fix]:
        second = dict(finding.related)["next backward"]
        step = finding.step
        if not step.receiver or not (second.root and step.root) or second.path != step.path:
            return None
        code = f"{step.receiver}.zero_grad()"
        edit = edits.insert_before(second.span, code)
        if edit is None:
            return None
        return Fix(f"Insert `{code}` before `{second.text}`", preliminary(finding), (edit,))


def _order(sites):
    return tuple((s.path, s.span) for s in sites)
