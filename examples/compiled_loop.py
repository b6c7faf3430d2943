"""A plain-torch loop whose whole training step is compiled with ``torch.compile``, both ways torchsched offers.

The step is forward, backward, a fused AdamW step with a tensor LR (torch's recipe for compiled optimizers)
and the schedule:

1. The drop-in way: ``torchsched.lr_scheduler.LambdaLR`` running a torchsched spec; ``sched.step()`` is
   inside the compiled function.
2. ``torchsched.wrap``: the wrapped optimizer's ``step()`` (which advances the schedule) is inside it.

Each trains 200 steps compiled and 200 steps eagerly; the LRs the optimizer used (read before every step,
outside the compiled function) must be the same, bit for bit, and equal the schedule. The number of graph
breaks is printed next to the same compiled step at a constant LR (the optimizer alone): what torchsched adds.

Run: ``python examples/compiled_loop.py`` (needs a C++ compiler for inductor; CPU). Exits 0 when every check
holds.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch._dynamo

import torchsched
from torchsched import schedules as S

STEPS, LR = 200, 1e-2
SPEC = S.warmup(20) >> S.cosine(STEPS - 20)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))


def build(way: str, model: torch.nn.Module) -> tuple[Any, Callable[[], None]]:
    """The optimizer the step uses, and what the step calls after ``backward()``."""
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(LR), fused=True)
    if way == "constant":
        return opt, opt.step
    if way == "drop-in":
        sched = torchsched.lr_scheduler.LambdaLR(opt, SPEC)

        def update() -> None:
            opt.step()
            sched.step()

        return opt, update
    wrapped = torchsched.wrap(opt, SPEC)  # the fused optimizer's LR tensor stays a tensor, filled in place
    return wrapped, wrapped.step


def reason(key: str) -> str:
    """A graph break's explanation, one line."""
    lines = [line.strip() for line in key.splitlines()]
    explained = [line for line in lines if line.startswith("Explanation:")]
    return (explained or lines)[0].split(" in file ")[0][:160]  # no install paths in the output


def run(way: str, compiled: bool) -> tuple[list[float], dict[str, Any]]:
    """200 steps; returns the LR of every step and, compiled, the dynamo counters."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = make_model()
    opt, update = build(way, model)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        update()
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
    stats = {"graph breaks": sum(counters["graph_break"].values()),
             "graphs": counters["stats"]["unique_graphs"],
             "recompiles": sum(counters["recompiles"].values()),
             "reasons": {reason(key) for key in counters["graph_break"]}}
    return lrs, stats


def main() -> None:
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    _, baseline = run("constant", compiled=True)
    show = ("graph breaks", "graphs", "recompiles")
    print(f"compiled_loop: constant LR: " + ", ".join(f"{k} {baseline[k]}" for k in show))
    for way in ("drop-in", "wrap"):
        eager, _ = run(way, compiled=False)
        assert all(math.isclose(lr, LR * SPEC(t), rel_tol=1e-6) for t, lr in enumerate(eager)), way
        compiled, stats = run(way, compiled=True)
        assert compiled == eager, f"{way}: the compiled step used other LRs than eager mode"
        added = stats["graph breaks"] - baseline["graph breaks"]
        print(f"compiled_loop: {way}: {STEPS} steps, LRs equal eager mode's bit for bit; "
              + ", ".join(f"{k} {stats[k]}" for k in show) + f" ({added:+d} graph breaks against a constant LR)")
        for r in sorted(stats["reasons"] - baseline["reasons"]):
            print(f"compiled_loop: {way}: graph break not in the constant-LR step: {r}")


if __name__ == "__main__":
    main()
