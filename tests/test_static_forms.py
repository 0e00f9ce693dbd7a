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


@pytest.mark.parametrize("clear", ["p.grad.fill_(0.5)", "p.grad.mul_(2)", "p.grad.add_(1)"])
def test_an_overwrite_or_scale_is_not_a_zero(clear):
    assert codes(LOOP.format(clear=clear)) == [("ZG001", 11)]
