"""A torch.compile'd training step with torchsched against torch's recipe for compiled LR schedules, same run.

torch's recipe (its tutorial "torch.compile with LR scheduler"): the optimizer takes a tensor LR,
``torch.optim.Adam(..., lr=torch.tensor(0.01))``, so that a changing LR is not a new guard value, and a torch
scheduler steps it. Against it, with the same model, data and optimizer:

- ``drop-in``: ``torchsched.lr_scheduler.CosineAnnealingLR`` in place of torch's (the one import line);
- ``wrap``: ``torchsched.wrap(optimizer, schedules.cosine(T))``, whose ``step()`` advances the schedule;
- ``constant``: the optimizer alone (no schedule), for the overhead columns only.

Two shapes of compiled step, each compiled by inductor on the CPU:

- ``step``: forward, backward, ``optimizer.step()``, ``scheduler.step()`` and ``zero_grad()`` in one compiled
  function;
- ``tutorial``: torch's tutorial, ``optimizer.step()`` and ``scheduler.step()`` compiled alone, forward and
  backward eager.

The variants run interleaved (each round times a few steps of every variant, in a rotating order, so drift hits
all alike); the gate compares median step times, never absolute ones, with ``time.perf_counter``, so it also
runs under ``--benchmark-disable``: torchsched must be no slower than torch's recipe (a ratio torch / torchsched
of at least 0.9, the noise of this measurement on a shared 2-core machine). Before timing, each variant's LRs are
checked against torch's over the first steps (the drop-in's equal torch's; ``wrap``'s closed-form cosine agrees
with torch's recursive one to float32 rounding). The table: ``pytest bench/test_bench_compile.py -s -k gate``.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Callable, Iterator

import pytest
import torch

import torchsched
from torchsched import lr_scheduler as drop_in
from torchsched import schedules as S

T_MAX = 10_000  # the schedule's length: the LR changes at every step timed
VARIANTS = ("constant", "torch", "drop-in", "wrap")
SHAPES = ("step", "tutorial")
GATE = 0.9  # torch / torchsched median step time; 1.0 is "as fast"
CHECK_STEPS = 25


class _Variant:
    """A model, Adam with a tensor LR, one way of scheduling it, and the step compiled in one shape."""

    def __init__(self, variant: str, shape: str) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))
        opt = torch.optim.Adam(self.model.parameters(), lr=torch.tensor(0.01))
        self.inner = opt
        self.opt: Any = opt
        self.sched: Any = None
        if variant == "torch":
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_MAX)
        elif variant == "drop-in":
            self.sched = drop_in.CosineAnnealingLR(opt, T_max=T_MAX)
        elif variant == "wrap":
            self.opt = torchsched.wrap(opt, S.cosine(T_MAX))
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(8, 16, generator=gen)
        self.y = torch.randn(8, 1, generator=gen)
        self.step = self._compile(shape)

    def _compile(self, shape: str) -> Callable[[], Any]:
        model, opt, sched, x, y = self.model, self.opt, self.sched, self.x, self.y
        if shape == "step":
            def train_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                opt.zero_grad(set_to_none=True)
                return loss.detach()

            compiled = torch.compile(train_step)
            return lambda: compiled(x, y)

        def update() -> None:
            opt.step()
            if sched is not None:
                sched.step()

        compiled_update = torch.compile(update)

        def tutorial_step() -> None:
            torch.nn.functional.mse_loss(model(x), y).backward()
            compiled_update()
            opt.zero_grad(set_to_none=True)
        return tutorial_step

    def lr(self) -> float:
        return float(self.inner.param_groups[0]["lr"])


@pytest.fixture(scope="module")
def variants() -> Iterator[dict[tuple[str, str], _Variant]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes about the profiler inside a compiled optimizer step
            built = {(shape, v): _Variant(v, shape) for shape in SHAPES for v in VARIANTS}
            for (shape, v), var in built.items():  # compile, and check the LRs against torch's
                lrs = []
                for _ in range(CHECK_STEPS):
                    var.step()
                    lrs.append(var.lr())
                var.lrs = lrs  # type: ignore[attr-defined]
            for shape in SHAPES:
                ref = built[(shape, "torch")].lrs  # type: ignore[attr-defined]
                assert built[(shape, "drop-in")].lrs == ref, f"{shape}: the drop-in's LRs differ from torch's"  # type: ignore[attr-defined]
                for a, b in zip(built[(shape, "wrap")].lrs, ref):  # type: ignore[attr-defined]
                    assert abs(a - b) <= 2.5e-7 * abs(b), f"{shape}: wrap's LRs differ from torch's: {a} != {b}"
        yield built
    finally:
        torch.set_num_threads(threads)


def _measure(built: dict[tuple[str, str], _Variant], shape: str, rounds: int = 150,
             per_round: int = 3) -> dict[str, float]:
    """Median per-step time of each variant of one shape, over interleaved rounds."""
    names = list(VARIANTS)
    times: dict[str, list[float]] = {v: [] for v in names}
    clock = time.perf_counter
    for r in range(rounds):
        k = r % len(names)
        for v in names[k:] + names[:k]:
            step = built[(shape, v)].step
            t0 = clock()
            for _ in range(per_round):
                step()
            times[v].append((clock() - t0) / per_round)
    return {v: statistics.median(ts) for v, ts in times.items()}


# ---- pytest-benchmark: the four variants of each shape in one group ----------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bench_compiled_step(benchmark, variants: dict[tuple[str, str], _Variant], shape: str,  # type: ignore[no-untyped-def]
                             variant: str) -> None:
    benchmark.group = f"compiled-{shape}"
    var = variants[(shape, variant)]
    before = var.lr()
    benchmark(var.step)
    if variant != "constant":
        assert var.lr() != before, "the LR must change while the step is timed"


# ---- the gate (always runs: perf_counter, same run) --------------------------------------------------

def test_gate_compiled_step_no_slower_than_torch(variants: dict[tuple[str, str], _Variant]) -> None:
    lines = ["", f"{'shape':<10}{'constant':>10}{'torch':>10}{'drop-in':>10}{'wrap':>10}"
             f"{'torch/drop-in':>15}{'torch/wrap':>12}   (median step, microseconds; ratio > 1: torchsched faster)"]
    failures = []
    for shape in SHAPES:
        med = _measure(variants, shape)
        ratios = {v: med["torch"] / med[v] for v in ("drop-in", "wrap")}
        lines.append(f"{shape:<10}" + "".join(f"{med[v] * 1e6:>10.1f}" for v in VARIANTS)
                     + f"{ratios['drop-in']:>14.2f}x{ratios['wrap']:>11.2f}x")
        failures += [f"{shape}/{v}: {r:.2f}x < {GATE}x" for v, r in ratios.items() if r < GATE]
    print("\n".join(lines))
    assert not failures, "a compiled step with torchsched is slower than torch's recipe: " + "; ".join(failures)
