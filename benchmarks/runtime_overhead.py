"""Overhead of the runtime checker (zgcheck.runtime) on a real training loop.

    python benchmarks/runtime_overhead.py [--steps 50] [--width 2048] [--batch 64] [--repeats 3]

Trains a 3-layer MLP (width x width hidden layers, ~8.4M parameters at 2048)
with Adam, once plainly and once under `run_script`, alternating, and compares
the median time of one training step (forward, backward, step, zero): wall
time and process CPU time. The first steps of each run are warm-up and not
counted. Variants cover the paths the checker takes: the canonical loop
(set_to_none True and False), gradient accumulation, and the buggy loop with no
zero_grad (every step reported). It also reports the checker's own time per
step (time spent inside the tracker's callbacks), which a busy machine does
not blur the way it blurs step times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn as nn

WARMUP = 5
VARIANTS = ("canonical", "set_to_none_false", "accumulate4", "no_zero")


def train(variant: str, steps: int, width: int, batch: int) -> list:
    """Per-step (wall, cpu) times in seconds, after warm-up."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, width), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + WARMUP):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = nn.functional.cross_entropy(model(x), y)
        if variant == "accumulate4":
            (loss / 4).backward()
            if (i + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
        else:
            loss.backward()
            optimizer.step()
            if variant == "canonical":
                optimizer.zero_grad()
            elif variant == "set_to_none_false":
                optimizer.zero_grad(set_to_none=False)
        if i >= WARMUP:
            times.append((time.perf_counter() - start, time.process_time() - start_cpu))
    return times


def _worker(argv: list) -> None:
    variant, steps, width, batch, out = argv
    times = train(variant, int(steps), int(width), int(batch))
    with open(out, "w") as f:
        json.dump(times, f)


class _SelfTime:
    """Wraps the tracker's event callbacks to add up the time spent in them."""

    EVENTS = ("before_backward", "after_backward", "before_zero", "after_zero", "on_step")

    def __init__(self) -> None:
        self.total = 0.0

    def install(self, tracker_class) -> None:
        for name in self.EVENTS:
            setattr(tracker_class, name, self._timed(getattr(tracker_class, name)))

    def _timed(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed


def _checked(variant: str, options) -> tuple:
    from zgcheck.runtime import run_script

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    argv = ["--worker", variant, str(options.steps), str(options.width), str(options.batch), out]
    result = run_script(os.path.abspath(__file__), argv)
    assert result.exit_code == 0 and not result.internal_errors, result
    with open(out) as f:
        times = [tuple(t) for t in json.load(f)]
    os.unlink(out)
    return result, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from zgcheck.runtime.tracker import Tracker

    self_time = _SelfTime()
    self_time.install(Tracker)

    params = 2 * options.width * options.width + 10 * options.width + 2 * options.width + 10
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}")
    print(f"MLP width {options.width} ({params / 1e6:.1f}M parameters), batch {options.batch}, "
          f"{options.steps} timed steps after {WARMUP} warm-up, {options.repeats} repeats, Adam")
    print("median ms per step; wall and process CPU; 'tracker' = time inside the checker per step")
    print(f"{'variant':<19}{'plain wall':>11}{'checked':>9}{'ratio':>7}{'plain cpu':>11}{'checked':>9}"
          f"{'ratio':>7}{'tracker':>9}  verdict")
    for variant in options.variants.split(","):
        plain, checked, verdict = [], [], ""
        self_time.total, counted = 0.0, 0
        for repeat in range(options.repeats):
            # Alternate which one runs first so that warm caches favour neither.
            if repeat % 2 == 0:
                plain += train(variant, options.steps, options.width, options.batch)
            result, times = _checked(variant, options)
            checked += times
            if repeat % 2 == 1:
                plain += train(variant, options.steps, options.width, options.batch)
            counted += options.steps + WARMUP
            verdict = ",".join(f"{d.code}@{d.span.start_line}" for d in result.diagnostics) or "clean"
        pw, cw = (statistics.median(t[0] for t in runs) * 1e3 for runs in (plain, checked))
        pc, cc = (statistics.median(t[1] for t in runs) * 1e3 for runs in (plain, checked))
        tracker = self_time.total / counted * 1e3
        print(f"{variant:<19}{pw:>11.1f}{cw:>9.1f}{cw / pw:>7.3f}{pc:>11.1f}{cc:>9.1f}{cc / pc:>7.3f}"
              f"{tracker:>9.2f}  {verdict}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2:])
    else:
        main()
