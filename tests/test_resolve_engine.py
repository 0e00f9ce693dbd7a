"""Name resolution and the engine on small sources, through `zgcheck.analysis`."""

from __future__ import annotations

import textwrap

from zgcheck import source
from zgcheck.analysis import Module, Workspace, analyse, engine
from zgcheck.analysis.frames import walk
from zgcheck.analysis.resolve import plan
from zgcheck.analysis.units import Backward, Call, Covers, Fresh, Step, Zero
from zgcheck.recognise import DEFAULT_TABLES
from zgcheck.rules import ALL_RULES


def module_of(code: str) -> Module:
    parsed = source.parse(textwrap.dedent(code), "t.py")
    return Module(parsed, Workspace(DEFAULT_TABLES))


def actions(code: str, unit: str = "train"):
    module = module_of(code)
    found = next(u for u in module.units if u.name == unit)
    return list(walk(plan(found).root))


def kinds(acts):
    return [type(a).__name__ for a in acts]


def test_an_optimizer_built_from_a_models_parameters_is_tied_to_it():
    acts = actions("""\
        import torch
        def train(model):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            opt.step()
        """)
    assert kinds(acts) == ["Fresh", "Step"]
    assert acts[0] == Fresh("opt")
    assert acts[1].optimizer.key == "opt" and acts[1].optimizer.modules == ("model",)


def test_a_scaler_is_known_by_its_constructor_and_steps_its_argument():
    (step,) = actions("""\
        import torch
        def train(optimizer):
            gs = torch.amp.GradScaler("cpu")
            gs.step(optimizer)
        """)
    assert isinstance(step, Step) and step.optimizer.key == "optimizer"
    assert (step.site.receiver, step.site.scaler) == ("optimizer", "gs")


def test_schedulers_and_environments_do_not_step():
    assert actions("""\
        def train(env, scheduler, lr_sched):
            env.step(0)
            scheduler.step()
            lr_sched.step()
        """) == []


def test_a_module_zero_covers_the_optimizers_tied_to_that_module():
    (zero,) = actions("""\
        def train(model):
            model.zero_grad()
        """)
    assert zero == Zero(Covers(modules=("model",)), zero.site)


def test_a_helper_is_resolved_in_the_callers_terms():
    acts = actions("""\
        def reset(o):
            o.zero_grad()

        def train(model, opt):
            reset(opt)
            model(1).backward()
            opt.step()
        """)
    assert kinds(acts) == ["Call", "Zero", "Backward", "Step"]
    assert isinstance(acts[0], Call) and acts[0].frame.scope.depth == 1
    assert acts[1].covers == Covers(optimizers=frozenset({"opt"}))  # `o` is the caller's `opt`
    assert not acts[1].site.root and acts[2].site.root


def test_recursion_is_not_followed():
    acts = actions("""\
        def train(model, opt, n):
            model(1).backward()
            opt.step()
            train(model, opt, n - 1)
        """)
    assert kinds(acts) == ["Backward", "Step"]


def test_a_literal_argument_rules_out_a_branch_of_the_helper():
    module = module_of("""\
        def step(opt, zero):
            if zero:
                opt.zero_grad()
            opt.step()

        def train(model, opt, data):
            for x in data:
                model(x).backward()
                step(opt, zero=False)
        """)
    train = next(u for u in module.units if u.name == "train")
    assert {(f.code, f.site.span.start_line) for f in engine.run(plan(train), ALL_RULES)} == {("ZG001", 4)}


def test_findings_are_merged_per_position_and_know_they_are_in_a_helper():
    parsed = source.parse(textwrap.dedent("""\
        def helper(model, opt):
            model(1).backward()
            opt.step()

        def train(model, opt, data):
            for x in data:
                helper(model, opt)
        """), "t.py")
    findings = analyse(parsed, Workspace(DEFAULT_TABLES))
    assert [(f.code, f.site.span.start_line, f.site.root) for f in findings] == [("ZG001", 3, False)]


def test_backward_actions_carry_where_they_are():
    (backward,) = actions("""\
        def train(loss):
            loss.backward()
        """)
    assert isinstance(backward, Backward) and backward.site.span.start_line == 2


def reaches(code: str):
    module = module_of(code)
    return [a.reach for a in walk(plan(module.top).root) if isinstance(a, Backward)]


def test_a_loss_reaches_the_models_it_was_computed_from():
    (reach,) = reaches("""\
        import torch
        G, D = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
        criterion = torch.nn.BCEWithLogitsLoss()
        fake = G(torch.randn(8, 2))
        loss = criterion(D(fake), torch.ones(8, 1)) + 0.1 * fake.pow(2).mean()
        loss.backward()
        """)
    assert reach.must == {"G", "D"} and reach.may == {"G", "D"}


def test_detach_no_grad_and_item_stop_the_walk():
    detached, no_grad = reaches("""\
        import torch
        G, D = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
        fake = G(torch.randn(8, 2))
        D(fake.detach()).mean().backward()
        with torch.no_grad():
            frozen = G(torch.randn(8, 2))
        (D(frozen).mean() + fake.sum().item()).backward()
        """)
    assert detached.must == detached.may == {"D"}
    assert no_grad.must == no_grad.may == {"D"}


def test_what_a_helper_returns_is_not_guessed():
    (reach,) = reaches("""\
        def compute(x):
            return x

        loss = compute(1)
        loss.backward()
        """)
    assert reach.must == set() and reach.may is None


def test_a_backward_that_provably_misses_an_optimizer_leaves_it_clean():
    parsed = source.parse(textwrap.dedent("""\
        import torch
        a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
        opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
        for x in torch.randn(3, 1):
            opt_a.zero_grad()
            a(x).sum().backward()
            opt_a.step()
            b(x).sum().backward()
            opt_b.step()
            opt_b.zero_grad()
        """), "t.py")
    assert analyse(parsed, Workspace(DEFAULT_TABLES)) == []
