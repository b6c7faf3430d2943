"""A small MLP trained with an Accelerate loop on random data, both ways torchsched offers, in one process and
in two.

1. The drop-in way: ``torchsched.lr_scheduler.LambdaLR`` running a torchsched spec on a plain AdamW, prepared
   with ``accelerator.prepare(model, opt, loader, sched)``. It must use the LRs torch's ``LambdaLR`` gives.
2. ``torchsched.wrap``: ``accelerator.prepare(model, wrapped, loader, wrapped.scheduler())``. The prepared
   scheduler is the view; stepping it changes nothing (the wrapper advanced in its own ``step()``).

One process, gradient accumulation over 2 batches: each way trains 16 optimizer steps, then again with
``accelerator.save_state`` after 8 and ``load_state`` into fresh objects for the other 8. The LRs used
(recorded by a hook on the optimizer) must equal the schedule, resume included, and batches that only
accumulate must not move it.

Two processes (gloo on the CPU, started by this script): Accelerate shards the loader, so each process takes
half as many optimizer steps, and it steps a prepared scheduler once per process per optimizer step, as it
does torch's, so that a schedule sized in batches of the unsharded loader ends with the training. A wrapped
optimizer advances once per optimizer step. So in 2 processes:

- drop-in, sized for the unsharded loader's 16 batches: step k uses the schedule's LR at 2k;
- wrap, the same spec: step k uses the spec's LR at k (the second half of the spec is never reached);
- wrap, the spec sized in the prepared loader's 8 steps: step k uses the drop-in's LR, as Accelerate's
  convention has it.

Both processes must use the same LRs, and the drop-in and the per-process-sized wrap, stopped after 4 steps,
saved with ``accelerator.save_state`` in both processes and resumed into fresh objects with ``load_state``, must
use the LRs of the run without a stop.

Run: ``python examples/accelerate_loop.py`` (needs accelerate; CPU, a few seconds). Exits 0 when every check
holds.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import warnings
from typing import Any

import torch
import torch.multiprocessing
from accelerate import Accelerator

import torchsched
from torchsched import schedules as S

STEPS, ACCUMULATE, LR, BATCH, PROCESSES = 16, 2, 1e-2, 4, 2


def spec(steps: int) -> S.Schedule:
    """A quarter of warmup, then cosine, over ``steps``: factors of LR."""
    return S.warmup(steps // 4) >> S.cosine(steps - steps // 4)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))


def loader(batches: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batches * BATCH, 16, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)


def torch_lrs(schedule: S.Schedule, steps: int) -> list[float]:
    """The LRs torch's own LambdaLR gives at steps 0..steps-1 (the spec as an ordinary lambda)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: schedule(t))
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def build(way: str, schedule: S.Schedule, model: torch.nn.Module, used: list[float]) -> tuple[Any, Any]:
    """The optimizer and scheduler to prepare; ``used`` gets the LR of every optimizer step."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    opt.register_step_pre_hook(lambda o, args, kwargs: used.append(float(o.param_groups[0]["lr"])))
    if way == "drop-in":  # the one-line change: torchsched's LambdaLR for torch's
        return opt, torchsched.lr_scheduler.LambdaLR(opt, schedule)
    wrapped = torchsched.wrap(opt, schedule)
    return wrapped, wrapped.scheduler()


def train(accelerator: Accelerator, model: Any, opt: Any, sched: Any, batches: Any) -> None:
    for x, y in batches:
        with accelerator.accumulate(model):
            loss = torch.nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            opt.step()  # a no-op on batches that only accumulate
            sched.step()
            opt.zero_grad()
        assert math.isfinite(loss.item())


def one_process(way: str, stop_after: int | None = None, resume: str | None = None,
                save_to: str | None = None) -> list[float]:
    """16 optimizer steps of 2 batches each; stops after ``stop_after`` of them and saves, or resumes."""
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)
    used: list[float] = []
    model = make_model()
    opt, sched = build(way, spec(STEPS), model, used)
    model, opt, dl, sched = accelerator.prepare(model, opt, loader(STEPS * ACCUMULATE), sched)
    batches: Any = dl
    if resume is not None:
        accelerator.load_state(resume)
        batches = accelerator.skip_first_batches(dl, STEPS // 2 * ACCUMULATE)
    if stop_after is not None:
        batches = (b for i, b in zip(range(stop_after * ACCUMULATE), batches))
    train(accelerator, model, opt, sched, batches)
    if save_to is not None:
        accelerator.save_state(save_to)
    return used


def worker(index: int, port: int, out: str) -> None:
    """One of the processes: trains each way on its shard of the loader, writes the LRs it used."""
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(PROCESSES), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), ACCELERATE_USE_CPU="yes")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == PROCESSES, accelerator.num_processes
    result = {}
    runs = {"drop-in": ("drop-in", spec(STEPS)), "wrap": ("wrap", spec(STEPS)),
            "wrap, sized per process": ("wrap", spec(STEPS // PROCESSES))}
    for label, (way, schedule) in runs.items():
        used: list[float] = []
        model = make_model()
        opt, sched = build(way, schedule, model, used)
        model, opt, dl, sched = accelerator.prepare(model, opt, loader(STEPS), sched)
        assert len(dl) == STEPS // PROCESSES, len(dl)
        train(accelerator, model, opt, sched, dl)
        result[label] = used
    for label in ("drop-in", "wrap, sized per process"):  # stopped halfway, saved, resumed into fresh objects
        result[label + ", resumed"] = resumed_in_two(runs[label], os.path.join(out, f"state-{label}"))
    with open(os.path.join(out, f"rank{index}.json"), "w") as f:
        json.dump(result, f)


def resumed_in_two(run: tuple[str, S.Schedule], state: str) -> list[float]:
    """The run of one way stopped after half of this process's steps, ``save_state`` (every process), then
    fresh objects prepared by a fresh Accelerator and ``load_state``, and the rest: the LRs of both halves."""
    way, schedule = run
    half = STEPS // PROCESSES // 2
    used: list[float] = []
    for part in ("first", "rest"):
        accelerator = Accelerator(cpu=True)
        model = make_model()
        opt, sched = build(way, schedule, model, used)
        model, opt, dl, sched = accelerator.prepare(model, opt, loader(STEPS), sched)
        if part == "first":
            train(accelerator, model, opt, sched, (b for _, b in zip(range(half), dl)))
            accelerator.save_state(state)
            accelerator.wait_for_everyone()
        else:
            accelerator.load_state(state)
            train(accelerator, model, opt, sched, accelerator.skip_first_batches(dl, half))
    return used


def two_processes() -> dict[str, list[float]]:
    with socket.socket() as s:  # a free port for the process group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.start_processes(worker, args=(port, out), nprocs=PROCESSES, start_method="spawn")
        ranks = []
        for i in range(PROCESSES):
            with open(os.path.join(out, f"rank{i}.json")) as f:
                ranks.append(json.load(f))
    assert all(r == ranks[0] for r in ranks), "the processes used different LRs"
    return ranks[0]


def assert_lrs(label: str, got: list[float], want: list[float]) -> None:
    assert len(got) == len(want), (label, len(got), len(want))
    for t, (g, w) in enumerate(zip(got, want)):
        assert math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-18), (label, t, g, w)


def main() -> None:
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    warnings.filterwarnings("ignore", category=FutureWarning)
    reference = {"drop-in": torch_lrs(spec(STEPS), STEPS), "wrap": [LR * spec(STEPS)(t) for t in range(STEPS)]}
    for way, want in reference.items():
        whole = one_process(way)
        assert_lrs(way, whole, want)
        with tempfile.TemporaryDirectory() as tmp:
            first = one_process(way, stop_after=STEPS // 2, save_to=tmp)
            rest = one_process(way, resume=tmp)
        assert first + rest == whole, f"{way}: the resumed run used other LRs"  # bit for bit
        print(f"accelerate_loop: {way}: {STEPS} steps of {ACCUMULATE} batches, LRs equal the schedule, "
              "save_state/load_state included")

    per_process = STEPS // PROCESSES
    got = two_processes()
    # A prepared torch-style scheduler steps once per process per optimizer step: step k is at 2k.
    assert_lrs("2 processes, drop-in", got["drop-in"], reference["drop-in"][::PROCESSES])
    # A wrapped optimizer advances once per optimizer step, however often the view is stepped.
    assert_lrs("2 processes, wrap", got["wrap"], reference["wrap"][:per_process])
    # Sized in the prepared loader's steps, the wrapped schedule is the drop-in's, as Accelerate counts.
    assert_lrs("2 processes, wrap sized per process", got["wrap, sized per process"], got["drop-in"])
    # save_state in both processes, load_state into fresh objects: the same LRs as the run without a stop
    assert got["drop-in, resumed"] == got["drop-in"], "2 processes, drop-in: the resumed run used other LRs"
    assert got["wrap, sized per process, resumed"] == got["wrap, sized per process"], \
        "2 processes, wrap: the resumed run used other LRs"
    print(f"accelerate_loop: {PROCESSES} processes: the drop-in steps {PROCESSES}x per optimizer step, wrap once; "
          "a wrapped spec sized per process matches the drop-in; save_state/load_state in both processes included")


if __name__ == "__main__":
    main()
