"""Static verdicts on forms the reference trainer cannot observe the same way (writes
through `.data` do not bump a tensor's version; a clearing loop that is not a zero_grad()
call is reported by the runtime at the step, not at the loop). Each failed before."""

from __future__ import annotations

import textwrap

import pytest

from zgcheck.checker import check_text

LOOP = """\
import torch
import torch.nn as nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(4):
    loss = model(torch.randn(8, 4)).sum()
    loss.backward()
    for p in model.parameters():
        {clear}
    optimizer.step()
"""


def codes(source: str):
    return sorted((d.code, d.span.start_line) for d in check_text(textwrap.dedent(source), "t.py"))


@pytest.mark.parametrize("clear", ["p.grad.detach_().zero_()", "p.grad.data.fill_(0)", "p.grad *= 0",
                                   "p.grad.data.zero_()", "p.grad.data.mul_(0.0)", "p.grad.detach().zero_()"])
def test_a_clearing_form_between_backward_and_step_is_a_wipe(clear):
    assert codes(LOOP.format(clear=clear)) == [("ZG002", 9)]


@pytest.mark.parametrize("clear", ["p.grad.mul_(2)", "p.grad.add_(1)", "p.grad = p.grad / 2",
                                   "p.grad.copy_(p.grad * 2)", "p.grad.fill_(p.grad.mean())"])
def test_a_gradient_derived_from_the_old_one_keeps_the_leftover(clear):
    assert codes(LOOP.format(clear=clear)) == [("ZG001", 11)]


@pytest.mark.parametrize("clear", ["p.grad.fill_(0.5)", "p.grad = torch.ones_like(p)", "p.grad.data.copy_(t)",
                                   "p.grad.detach_().fill_(1.0)", "p.grad.data = torch.randn_like(p)"])
def test_an_overwrite_applies_new_values_not_leftovers(clear):
    # Neither ZG001 (nothing left over reaches the step) nor ZG002 (nothing is cleared).
    assert codes(LOOP.format(clear=clear)) == []


def test_an_overwrite_of_one_tensor_covers_the_optimizer_holding_it_alone():
    source = """\
        import torch
        w = torch.randn(3, requires_grad=True)
        b = torch.randn(3, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        model = torch.nn.Linear(3, 3)
        opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
        for i in range(3):
            (w * b).sum().backward()
            w.grad = torch.ones(3)
            opt.step()
            model(w.detach()).sum().backward()
            model.weight.grad.fill_(1.0)
            opt2.step()
        """
    # model.weight alone is overwritten: model.bias keeps its leftover.
    assert codes(source) == [("ZG001", 13)]
