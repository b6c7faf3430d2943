"""A plain-torch loop whose whole training step is compiled with ``torch.compile``, both ways torchsched offers.

The step is forward, backward, a fused AdamW step with a tensor LR (torch's recipe for compiled optimizers: a tensor
LR is read in place, where a Python float would be a new guard value at every step), the schedule's step and
``zero_grad``:

1. The drop-in way: ``torchsched.lr_scheduler.LambdaLR`` running a torchsched spec; ``sched.step()`` is traced as
   one torchsched op in the graph.
2. ``torchsched.wrap``: the wrapped optimizer's ``step()`` (which advances the schedule) is the step.

Each trains 200 steps compiled and 200 steps eagerly; the LRs the optimizer used (read before every step, outside
the compiled function) must be the same, bit for bit, and equal the schedule. The graph breaks and recompiles
are printed next to the same compiled step at a constant LR (the optimizer alone) and with torch's own
``LambdaLR``: torchsched adds neither (torch's scheduler adds a graph break, where dynamo skips its step).

Run: ``python examples/compiled_loop.py`` (needs a C++ compiler for inductor; CPU). Exits 0 when every check
holds.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch._dynamo

import torchsched
from torchsched import schedules as S

STEPS, LR = 200, 1e-2
SPEC = S.warmup(20) >> S.cosine(STEPS - 20)


class Recompiles(logging.Handler):
    """Counts dynamo's recompile messages (``torch._logging.set_logs(recompiles=True)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))


def build(way: str, model: torch.nn.Module) -> tuple[Any, Any]:
    """The optimizer the step steps, and the scheduler it steps after it (None: none)."""
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(LR), fused=True)
    if way == "constant":
        return opt, None
    if way == "torch LambdaLR":
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: SPEC(t))
    if way == "drop-in":
        return opt, torchsched.lr_scheduler.LambdaLR(opt, SPEC)
    return torchsched.wrap(opt, SPEC), None  # the tensor LR stays a tensor, filled in place


def reason(key: str) -> str:
    """A graph break's explanation, one line."""
    lines = [line.strip() for line in key.splitlines()]
    explained = [line for line in lines if line.startswith("Explanation:")]
    return (explained or lines)[0].split(" in file ")[0][:160]  # no install paths in the output


def run(way: str, compiled: bool, recompiles: Recompiles) -> tuple[list[float], dict[str, Any]]:
    """200 steps; returns the LR of every step and, compiled, what dynamo did."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    recompiles.count = 0
    model = make_model()
    opt, sched = build(way, model)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    fn = torch.compile(step) if compiled else step
    lrs = []
    for t in range(STEPS):
        g = torch.Generator().manual_seed(t)
        x = torch.randn(8, 16, generator=g)
        lrs.append(float(opt.param_groups[0]["lr"]))  # the LR this step is about to use
        loss = fn(x, x.sum(dim=1, keepdim=True))
        assert math.isfinite(loss.item())
    counters = torch._dynamo.utils.counters
    stats = {"graph breaks": sum(counters["graph_break"].values()), "recompiles": recompiles.count,
             "reasons": {reason(key) for key in counters["graph_break"]}}
    return lrs, stats


def main() -> None:
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    recompiles = Recompiles()
    torch._logging.set_logs(recompiles=True)
    logging.getLogger("torch._dynamo.guards.__recompiles").addHandler(recompiles)
    _, baseline = run("constant", compiled=True, recompiles=recompiles)
    show = ("graph breaks", "recompiles")
    print("compiled_loop: constant LR: " + ", ".join(f"{k} {baseline[k]}" for k in show))
    for way in ("torch LambdaLR", "drop-in", "wrap"):
        eager, _ = run(way, compiled=False, recompiles=recompiles)
        assert all(math.isclose(lr, LR * SPEC(t), rel_tol=1e-6) for t, lr in enumerate(eager)), way
        compiled, stats = run(way, compiled=True, recompiles=recompiles)
        assert compiled == eager, f"{way}: the compiled step used other LRs than eager mode"
        added = stats["graph breaks"] - baseline["graph breaks"]
        print(f"compiled_loop: {way}: {STEPS} steps, LRs equal eager mode's bit for bit; "
              + ", ".join(f"{k} {stats[k]}" for k in show) + f" ({added:+d} graph breaks against a constant LR)")
        for r in sorted(stats["reasons"] - baseline["reasons"]):
            print(f"compiled_loop: {way}: graph break not in the constant-LR step: {r}")
        if way != "torch LambdaLR":
            assert added == 0 and stats["recompiles"] == 0, f"{way}: torchsched added graph breaks or recompiles"


if __name__ == "__main__":
    main()
