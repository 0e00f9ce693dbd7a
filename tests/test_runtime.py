"""The runtime checker (zgcheck.runtime) on small scripts written to tmp_path.

Each script states its expectations inline (`# expect: ZG001`), read by the same
parser as the fixtures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from fixture_support import parse_fixture  # noqa: E402
from zgcheck.runtime import RuntimeResult, run_script  # noqa: E402

PRELUDE = """\
import sys
import torch
import torch.nn as nn
torch.manual_seed(0)
"""


def write(tmp_path: Path, body: str, name: str = "script.py") -> Path:
    path = tmp_path / name
    path.write_text(PRELUDE + textwrap.dedent(body), encoding="utf-8")
    return path


def check(tmp_path: Path, body: str, **kwargs) -> RuntimeResult:
    """Runs the script and asserts the runtime verdict equals its inline expectations."""
    path = write(tmp_path, body)
    result = run_script(str(path), **kwargs)
    assert result.internal_errors == ()
    found = {(d.code, d.span.start_line) for d in result.diagnostics if d.path == str(path)}
    assert found == set(parse_fixture(path).expected), result.diagnostics
    return result


def clean(tmp_path: Path, body: str, **kwargs) -> RuntimeResult:
    result = check(tmp_path, body, **kwargs)
    assert result.error is None, result.error
    assert result.exit_code == 0
    return result


MODEL = """
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(6)]
def loss_of(x, y):
    return nn.functional.mse_loss(model(x), y)
"""


# -- ZG001 -------------------------------------------------------------------


def test_loop_without_zero_is_stale_at_the_step(tmp_path):
    result = clean(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    optimizer.step()  # expect: ZG001
""")
    (diag,) = result.diagnostics
    assert diag.name == "missing-zero-grad"
    assert "optimizer.step()" in diag.message
    assert any(e.startswith("model.0.weight") for e in diag.evidence)
    assert diag.related and diag.related[0].span.start_line == diag.span.start_line - 1
    assert result.counts == {"backward": 6, "step": 6}


@pytest.mark.parametrize("zero", [
    "optimizer.zero_grad()",
    "optimizer.zero_grad(set_to_none=False)",
    "model.zero_grad()",
    "model.zero_grad(set_to_none=False)",
    "for p in model.parameters(): p.grad = None",
    "for p in model.parameters():\n        if p.grad is not None: p.grad.zero_()",
    "for p in model.parameters():\n        if p.grad is not None:\n            p.grad.detach_(); p.grad.zero_()",
    "for p in model.parameters(): p.grad = torch.zeros_like(p)",
])
@pytest.mark.parametrize("where", ["before", "after"])
def test_canonical_loop_is_clean(tmp_path, zero, where):
    before = zero if where == "before" else "pass"
    after = zero if where == "after" else "pass"
    clean(tmp_path, MODEL + f"""
for x, y in data:
    {before}
    loss_of(x, y).backward()
    optimizer.step()
    {after}
""")


def test_zero_only_in_the_epoch_loop(tmp_path):
    clean(tmp_path, MODEL + """
for epoch in range(2):
    optimizer.zero_grad()
    for x, y in data:
        loss_of(x, y).backward()
        optimizer.step()  # expect: ZG001
""")


def test_gradient_accumulation_is_clean(tmp_path):
    clean(tmp_path, MODEL + """
for i, (x, y) in enumerate(data):
    (loss_of(x, y) / 3).backward()
    if (i + 1) % 3 == 0:
        optimizer.step()
        optimizer.zero_grad()
""")


def test_accumulation_without_zero_is_stale(tmp_path):
    clean(tmp_path, MODEL + """
for i, (x, y) in enumerate(data):
    loss_of(x, y).backward()
    if (i + 1) % 3 == 0:
        optimizer.step()  # expect: ZG001
""")


def test_single_backward_and_step_is_clean(tmp_path):
    clean(tmp_path, MODEL + """
x, y = data[0]
loss_of(x, y).backward()
optimizer.step()
""")


def test_step_twice_without_backward_between_is_not_stale(tmp_path):
    clean(tmp_path, MODEL + """
x, y = data[0]
optimizer.zero_grad()
loss_of(x, y).backward()
optimizer.step()
optimizer.step()
""")


def test_torch_autograd_backward_counts_once(tmp_path):
    result = clean(tmp_path, MODEL + """
for x, y in data:
    torch.autograd.backward(loss_of(x, y))
    optimizer.step()  # expect: ZG001
""")
    assert result.counts["backward"] == len(range(6))


def test_checkpointed_model_counts_each_backward_once(tmp_path):
    result = clean(tmp_path, MODEL + """
from torch.utils.checkpoint import checkpoint
for x, y in data:
    optimizer.zero_grad()
    out = checkpoint(model, x.requires_grad_(), use_reentrant=True)
    nn.functional.mse_loss(out, y).backward()
    optimizer.step()
""")
    assert result.counts["backward"] == 6


def test_autograd_grad_is_not_a_backward(tmp_path):
    result = clean(tmp_path, MODEL + """
for x, y in data:
    grads = torch.autograd.grad(loss_of(x, y), list(model.parameters()))
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    optimizer.step()
""")
    assert "backward" not in result.counts


def test_gradient_penalty_with_autograd_grad_is_clean(tmp_path):
    clean(tmp_path, MODEL + """
for x, y in data:
    optimizer.zero_grad()
    x = x.requires_grad_()
    out = model(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    loss = nn.functional.mse_loss(out, y) + g.pow(2).mean()
    loss.backward()
    optimizer.step()
""")


def test_clipping_is_not_a_clear(tmp_path):
    clean(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)
    optimizer.step()  # expect: ZG001
""")


def test_parameters_without_gradient_in_some_steps(tmp_path):
    clean(tmp_path, """
a, b = nn.Linear(4, 1), nn.Linear(4, 1)
optimizer = torch.optim.Adam(list(a.parameters()) + list(b.parameters()), lr=0.01)
for i in range(6):
    optimizer.zero_grad()
    head = a if i % 3 else b
    head(torch.randn(8, 4)).pow(2).mean().backward()
    optimizer.step()
""")


def test_param_groups(tmp_path):
    clean(tmp_path, """
a, b = nn.Linear(4, 4), nn.Linear(4, 1)
optimizer = torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.1}], lr=0.01)
for i in range(4):
    b(a(torch.randn(8, 4))).pow(2).mean().backward()
    optimizer.step()  # expect: ZG001
    a.zero_grad()
""")


def test_two_optimizers_only_the_unzeroed_one_is_stale(tmp_path):
    clean(tmp_path, """
enc, dec = nn.Linear(4, 4), nn.Linear(4, 1)
opt_enc = torch.optim.SGD(enc.parameters(), lr=0.01)
opt_dec = torch.optim.SGD(dec.parameters(), lr=0.01)
for i in range(4):
    opt_enc.zero_grad()
    dec(enc(torch.randn(8, 4))).pow(2).mean().backward()
    opt_enc.step()
    opt_dec.step()  # expect: ZG001
""")


def test_parameter_shared_by_two_optimizers(tmp_path):
    # One loss stepped by two optimizers, with no backward in between: not ZG003 either.
    clean(tmp_path, body="""
shared, a, b = nn.Linear(4, 4), nn.Linear(4, 1), nn.Linear(4, 1)
opt1 = torch.optim.SGD(list(shared.parameters()) + list(a.parameters()), lr=0.01)
opt2 = torch.optim.SGD(list(shared.parameters()) + list(b.parameters()), lr=0.01)
for i in range(4):
    opt1.zero_grad()
    opt2.zero_grad()
    h = shared(torch.randn(8, 4))
    (a(h) + b(h)).pow(2).mean().backward()
    opt1.step()
    opt2.step()
""")


def test_lr_scheduler_steps_are_not_optimizer_steps(tmp_path):
    result = clean(tmp_path, MODEL + """
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
for x, y in data:
    optimizer.zero_grad()
    loss_of(x, y).backward()
    optimizer.step()
    scheduler.step()
""")
    assert result.counts["step"] == 6


@pytest.mark.parametrize("zero, mark", [("optimizer.zero_grad()", ""), ("pass", "  # expect: ZG001")])
def test_sparse_gradients(tmp_path, zero, mark):
    clean(tmp_path, f"""
emb = nn.Embedding(50, 4, sparse=True)
optimizer = torch.optim.SparseAdam(emb.parameters(), lr=0.01)
for i in range(4):
    {zero}
    emb(torch.randint(0, 50, (8,))).pow(2).sum().backward()
    optimizer.step(){mark}
""")


def test_diagnostic_names_parameters_of_self_model(tmp_path):
    result = clean(tmp_path, """
class Trainer:
    def __init__(self):
        self.model = nn.Linear(4, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def fit(self):
        for i in range(3):
            self.model(torch.randn(8, 4)).pow(2).mean().backward()
            self.optimizer.step()  # expect: ZG001

Trainer().fit()
""")
    (diag,) = result.diagnostics
    assert "self.optimizer.step()" in diag.message and "occurrences: 2" in diag.evidence
    assert {e.split(":")[0] for e in diag.evidence[1:]} == {"self.model.weight", "self.model.bias"}


# -- ZG002 -------------------------------------------------------------------


def test_zero_between_backward_and_step_is_reported_at_the_zero(tmp_path):
    result = clean(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    optimizer.zero_grad()  # expect: ZG002
    optimizer.step()
""")
    (diag,) = result.diagnostics
    assert diag.name == "zero-grad-before-step"
    assert "optimizer.zero_grad()" in diag.message and "optimizer.step()" in diag.message
    assert [r.span.start_line for r in diag.related] == [diag.span.start_line - 1, diag.span.start_line + 1]


def test_model_zero_with_set_to_none_false_wipes_too(tmp_path):
    clean(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    model.zero_grad(set_to_none=False)  # expect: ZG002
    optimizer.step()
""")


def test_unobserved_wipe_is_reported_at_the_step(tmp_path):
    result = clean(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    for p in model.parameters():
        p.grad = None
    optimizer.step()  # expect: ZG002
""")
    (diag,) = result.diagnostics
    assert "not a zero_grad() call" in diag.message


def test_discarding_a_bad_batch_is_clean(tmp_path):
    clean(tmp_path, MODEL + """
for i, (x, y) in enumerate(data):
    loss = loss_of(x, y)
    loss.backward()
    if i % 2 == 0:
        optimizer.zero_grad()
        continue
    optimizer.step()
    optimizer.zero_grad()
""")


def test_discarded_gradients_of_parameters_the_next_batch_does_not_reach(tmp_path):
    clean(tmp_path, """
a, b = nn.Linear(4, 1), nn.Linear(4, 1)
optimizer = torch.optim.SGD(list(a.parameters()) + list(b.parameters()), lr=0.01)
for i in range(4):
    (a(torch.randn(8, 4)) + b(torch.randn(8, 4))).pow(2).mean().backward()
    optimizer.zero_grad()
    a(torch.randn(8, 4)).pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
""")


# -- GAN ---------------------------------------------------------------------

GAN = """
netG, netD = nn.Linear(2, 4), nn.Linear(4, 1)
optimizerG = torch.optim.Adam(netG.parameters(), lr=1e-3)
optimizerD = torch.optim.Adam(netD.parameters(), lr=1e-3)
bce = nn.BCEWithLogitsLoss()
for i in range(4):
    real, noise = torch.randn(8, 4), torch.randn(8, 2)
    {zero_d}
    errD = bce(netD(real), torch.ones(8, 1)) + bce(netD(netG(noise).detach()), torch.zeros(8, 1))
    errD.backward()
    optimizerD.step(){mark_d}
    {zero_g}
    errG = bce(netD(netG(noise)), torch.ones(8, 1))
    errG.backward()
    optimizerG.step(){mark_g}
"""


def test_gan_each_model_zeroed_is_clean(tmp_path):
    # errG.backward() reaches netD's parameters after optimizerD.step(): that
    # pollution is cleared by netD.zero_grad() before optimizerD's next step.
    clean(tmp_path, GAN.format(zero_d="netD.zero_grad()", zero_g="netG.zero_grad()", mark_d="", mark_g=""))


def test_gan_discriminator_never_zeroed(tmp_path):
    # D applies its own leftovers (ZG001) and errG's part in its gradients, which
    # optimizerG.step() already applied for G (ZG003): the static checker agrees.
    clean(tmp_path, GAN.format(zero_d="pass", zero_g="netG.zero_grad()", mark_d="  # expect: ZG001, ZG003",
                               mark_g=""))


def test_gan_generator_never_zeroed(tmp_path):
    clean(tmp_path, GAN.format(zero_d="netD.zero_grad()", zero_g="pass", mark_d="", mark_g="  # expect: ZG001"))


# -- another optimizer's loss (ZG003) ------------------------------------------

TRUNK = """
trunk, head1, head2 = nn.Linear(4, 4), nn.Linear(4, 1), nn.Linear(4, 1)
opt1 = torch.optim.SGD(list(trunk.parameters()) + list(head1.parameters()), lr=0.01)
opt2 = torch.optim.SGD(list(trunk.parameters()) + list(head2.parameters()), lr=0.01)
for i in range(4):
    opt1.zero_grad()
    {zero_between}
    x = torch.randn(8, 4)
    head1(trunk(x)).pow(2).mean().backward()
    opt1.step()
    {zero_after}
    head2(trunk(x)).pow(2).mean().backward()
    opt2.step(){mark}
"""


def test_shared_trunk_two_losses_stepped_in_turn_is_foreign(tmp_path):
    result = clean(tmp_path, TRUNK.format(zero_between="opt2.zero_grad()", zero_after="", mark="  # expect: ZG003"))
    (diag,) = result.diagnostics
    assert diag.name == "another-optimizers-loss"
    step = diag.span.start_line
    assert [r.span.start_line for r in diag.related] == [step - 4, step - 3, step - 1]  # B1, S(opt1), B2
    assert sorted(diag.evidence[1:]) == ["trunk.bias", "trunk.weight"]


def test_shared_trunk_zeroed_before_the_second_loss_is_clean(tmp_path):
    clean(tmp_path, TRUNK.format(zero_between="", zero_after="opt2.zero_grad()", mark=""))


def test_gan_zeroed_once_at_the_top_with_undetached_d_loss_is_foreign(tmp_path):
    # errD reaches netG through the undetached fake batch; optimizerD.step()
    # applies errD; errG adds to netG's gradients, which still hold errD's part.
    clean(tmp_path, GAN.format(zero_d="optimizerD.zero_grad(); optimizerG.zero_grad()", zero_g="pass",
                               mark_d="", mark_g="  # expect: ZG003").replace(".detach()", ""))


@pytest.mark.parametrize("zero_d, zero_g, mark_d, mark_g", [
    ("netD.zero_grad()", "netG.zero_grad()", "", ""),
    ("pass", "netG.zero_grad()", "  # expect: ZG001, ZG003", ""),
    ("netD.zero_grad()", "pass", "", "  # expect: ZG001"),
], ids=["dcgan", "d-never-zeroed", "g-never-zeroed"])
def test_gan_verdicts_where_each_model_is_zeroed_before_its_own_loss(tmp_path, zero_d, zero_g, mark_d, mark_g):
    clean(tmp_path, GAN.format(zero_d=zero_d, zero_g=zero_g, mark_d=mark_d, mark_g=mark_g))


def test_accumulation_is_not_foreign(tmp_path):
    clean(tmp_path, MODEL + """
for i, (x, y) in enumerate(data):
    (loss_of(x, y) / 2).backward()
    if i % 2 == 1:
        optimizer.step()
        optimizer.zero_grad()
""")


# -- closures (LBFGS) ----------------------------------------------------------

LBFGS = MODEL + """
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=3)
for x, y in data:
    def closure():
        {zero}
        loss = loss_of(x, y)
        loss.backward()
        return loss
    optimizer.step(closure){mark}
"""


def test_lbfgs_closure_that_zeroes_is_clean(tmp_path):
    clean(tmp_path, LBFGS.format(zero="optimizer.zero_grad()", mark=""))


def test_lbfgs_closure_without_zero_is_stale(tmp_path):
    clean(tmp_path, LBFGS.format(zero="pass", mark="  # expect: ZG001"))


def test_sgd_step_with_closure(tmp_path):
    clean(tmp_path, MODEL + """
for x, y in data:
    def closure():
        optimizer.zero_grad()
        loss = loss_of(x, y)
        loss.backward()
        return loss
    optimizer.step(closure)
""")


# -- AMP -----------------------------------------------------------------------

AMP = MODEL + """
scaler = torch.amp.GradScaler("cpu", init_scale={scale})
for x, y in data:
    {zero}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_of(x, y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer){mark}
    scaler.update()
"""


def test_amp_grad_scaler_clean(tmp_path):
    clean(tmp_path, AMP.format(scale="2.0**16", zero="optimizer.zero_grad()", mark=""))


def test_amp_grad_scaler_that_skips_steps_on_inf_is_clean(tmp_path):
    result = clean(tmp_path, AMP.format(scale="3e38", zero="optimizer.zero_grad()", mark=""))
    assert result.counts["step"] < 6  # the scaler skipped the overflowing steps


def test_amp_grad_scaler_without_zero(tmp_path):
    clean(tmp_path, AMP.format(scale="2.0**16", zero="pass", mark="  # expect: ZG001"))


def test_legacy_cpu_grad_scaler(tmp_path):
    clean(tmp_path, MODEL + """
import warnings
warnings.simplefilter("ignore")
scaler = torch.cpu.amp.GradScaler()
for x, y in data:
    scaler.scale(loss_of(x, y)).backward()
    scaler.step(optimizer)  # expect: ZG001
    scaler.update()
""")


# -- running scripts -------------------------------------------------------------


def test_script_that_raises_keeps_its_diagnostics(tmp_path):
    result = check(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    optimizer.step()  # expect: ZG001
raise ValueError("boom")
""")
    assert result.exit_code == 1
    assert "ValueError: boom" in result.error
    assert "script.py" in result.error and "runpy" not in result.error


def test_argv_and_main(tmp_path):
    out = tmp_path / "out.json"
    result = clean(tmp_path, f"""
import json
if __name__ == "__main__":
    json.dump({{"argv": sys.argv, "file": __file__}}, open({str(out)!r}, "w"))
""", argv=["--epochs", "3"])
    seen = json.loads(out.read_text())
    assert seen["argv"][1:] == ["--epochs", "3"]
    assert Path(seen["argv"][0]).name == "script.py" and Path(seen["file"]) == tmp_path / "script.py"
    assert sys.argv[1:] != ["--epochs", "3"]
    assert result.exit_code == 0


@pytest.mark.parametrize("call, code", [("sys.exit(3)", 3), ("sys.exit()", 0), ("sys.exit('bye')", 1)])
def test_system_exit(tmp_path, call, code):
    result = check(tmp_path, call + "\n")
    assert result.exit_code == code and result.error is None


def test_missing_script(tmp_path):
    result = run_script(str(tmp_path / "nope.py"))
    assert result.exit_code == 2 and "nope.py" in result.error and result.diagnostics == ()


def test_script_dir_is_importable_and_forgotten(tmp_path):
    (tmp_path / "zg_helper_mod.py").write_text("VALUE = 42\n")
    clean(tmp_path, "import zg_helper_mod\nassert zg_helper_mod.VALUE == 42\n")
    assert "zg_helper_mod" not in sys.modules
    assert str(tmp_path) not in sys.path


def test_torch_global_switches_are_restored(tmp_path):
    clean(tmp_path, "torch.set_grad_enabled(False)\ntorch.set_default_dtype(torch.float64)\n")
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32


def test_timeout(tmp_path):
    result = check(tmp_path, "while True:\n    pass\n", timeout=0.5)
    assert result.exit_code == 1 and "ScriptTimeout" in result.error


def test_instrumentation_is_removed_after_the_run(tmp_path):
    from torch.optim import optimizer as optim_module

    originals = (
        torch.Tensor.backward,
        torch.autograd.backward,
        torch.optim.Optimizer.__init__,
        torch.optim.Optimizer.zero_grad,
        torch.nn.Module.zero_grad,
    )
    hooks = (len(optim_module._global_optimizer_pre_hooks), len(optim_module._global_optimizer_post_hooks))
    check(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    optimizer.step()  # expect: ZG001
raise RuntimeError
""")
    assert (
        torch.Tensor.backward,
        torch.autograd.backward,
        torch.optim.Optimizer.__init__,
        torch.optim.Optimizer.zero_grad,
        torch.nn.Module.zero_grad,
    ) == originals
    assert torch.Tensor.backward is originals[0]
    assert hooks == (len(optim_module._global_optimizer_pre_hooks), len(optim_module._global_optimizer_post_hooks))
    # fill_/copy_ (watched for gradients the code overwrites) are the base class's again.
    assert "fill_" not in vars(torch.Tensor) and "copy_" not in vars(torch.Tensor)


def test_overwritten_gradients_are_not_stale_and_derived_ones_are(tmp_path):
    clean(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    for p in model.parameters():
        p.grad.data.fill_(0.25)
    optimizer.step()
for x, y in data:
    loss_of(x, y).backward()
    for p in model.parameters():
        p.grad.copy_(torch.randn_like(p))
    optimizer.step()
for x, y in data:
    loss_of(x, y).backward()
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
""")
    check(tmp_path, MODEL + """
for x, y in data:
    loss_of(x, y).backward()
    for p in model.parameters():
        p.grad = p.grad * 0.5
    optimizer.step()  # expect: ZG001
""")


def test_routine_zero_wiping_a_counter_window_is_lost_and_a_discard_is_not(tmp_path):
    check(tmp_path, MODEL + """
for i in range(12):
    x, y = data[i % len(data)]
    optimizer.zero_grad()  # expect: ZG002
    loss_of(x, y).backward()
    if i % 3 == 0:
        optimizer.step()
""")
    clean(tmp_path, MODEL + """
for i in range(12):
    x, y = data[i % len(data)]
    optimizer.zero_grad()
    loss = loss_of(x, y)
    if i % 3 == 1:
        loss = loss * float("inf")
    loss.backward()
    if not torch.isfinite(loss):
        continue
    optimizer.step()
""")


def test_consecutive_runs_are_independent(tmp_path):
    buggy = write(tmp_path, MODEL + "for x, y in data:\n    loss_of(x, y).backward()\n    optimizer.step()\n", "a.py")
    fine = write(tmp_path, MODEL + "for x, y in data:\n    optimizer.zero_grad()\n"
                 "    loss_of(x, y).backward()\n    optimizer.step()\n", "b.py")
    assert [d.code for d in run_script(str(buggy)).diagnostics] == ["ZG001"]
    assert run_script(str(fine)).diagnostics == ()
    assert [d.code for d in run_script(str(buggy)).diagnostics] == ["ZG001"]


def test_a_childs_own_sitecustomize_still_runs(tmp_path, monkeypatch):
    # Ours comes first on PYTHONPATH; the one it shadows runs too, and a child's
    # sys.path does not keep our directory.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE'] = 'ran'\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    out = tmp_path / "out.txt"
    child = "import os, sys; print(os.environ.get('OWN_SITE'), any('zgcheck-verify' in p for p in sys.path))"
    script = write(tmp_path, f"""
import subprocess
with open({str(out)!r}, "w") as f:
    subprocess.run([sys.executable, "-c", {child!r}], stdout=f, check=True)
""")
    assert run_script(str(script)).exit_code == 0
    assert out.read_text().split() == ["ran", "False"]


def test_forkserver_children_report_to_each_run(tmp_path):
    # One forkserver per interpreter: each run must get one that reports to it.
    script = write(tmp_path, """
import multiprocessing
def train():
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(3):
        model(torch.randn(4, 2)).sum().backward()
        optimizer.step()  # expect: ZG001
if __name__ == "__main__":
    child = multiprocessing.get_context("forkserver").Process(target=train)
    child.start()
    child.join()
""")
    for run in range(2):
        result = run_script(str(script))
        assert result.children == 1 and [d.code for d in result.diagnostics] == ["ZG001"], run


def test_batch_runner_prints_one_json_line_per_script(tmp_path):
    buggy = write(tmp_path, MODEL + "print('noise')\nfor x, y in data:\n    loss_of(x, y).backward()\n"
                  "    optimizer.step()\n", "a.py")
    failing = write(tmp_path, "print('more noise')\nraise SystemExit(4)\n", "b.py")
    proc = subprocess.run(
        [sys.executable, "-m", "zgcheck.runtime.batch", str(buggy), str(failing)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["path"]).name for r in lines] == ["a.py", "b.py"]
    step_line = buggy.read_text().splitlines().index("    optimizer.step()") + 1
    assert [(d["code"], d["line"]) for d in lines[0]["diagnostics"]] == [("ZG001", step_line)]
    assert lines[0]["diagnostics"][0]["path"] == str(buggy)
    assert lines[1]["exit_code"] == 4
    assert "noise" in proc.stderr


def test_installed_torch_has_no_step_argument_that_zeroes():
    # Issue 10, pattern 6: `optimizer.step(zero_grad=True)`-style arguments would make a step
    # that zeroes. No optimizer of the installed torch takes any argument but the closure, so
    # zgcheck models none; when this fails, torch grew one and the analysis should learn it.
    import inspect

    classes = [torch.optim.Optimizer] + [c for c in vars(torch.optim).values()
                                         if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)]
    extra = {c.__name__: sorted(set(inspect.signature(c.step).parameters) - {"self", "closure"})
             for c in classes}
    assert {name: args for name, args in extra.items() if args} == {}
