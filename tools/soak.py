"""Soak test: many wrapped steps and many wrapper lifetimes, checking that memory stays flat.

Run with ``make soak`` (not part of ``make test``). Two phases, each measured after a warm-up (a tenth of
its iterations) against its end:

- ``steps``: 10**6 ``step()`` calls of one wrapped optimizer (float LRs and, in a second optimizer, tensor
  LRs), crossing many of the finite-LR guard's windows;
- ``lifetimes``: 10**5 times: build a schedule, wrap an optimizer, step, save and load its state dict,
  pickle the schedule, fail a load on purpose, and drop everything.

For each phase it prints the resident set size (RSS) and the Python heap traced by tracemalloc at the
warm-up point and at the end, and fails (exit 1) when either grows by more than its allowance.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import sys
import time
import tracemalloc
from typing import Callable

import torch

from torchsched import schedules as S
from torchsched import wrap

RSS_ALLOWANCE = 16 * 2**20  # bytes: allocator noise, not a per-iteration leak (10**5 x 160 bytes)
HEAP_ALLOWANCE = 1 * 2**20  # bytes of Python objects still alive that were not at the warm-up point


def rss_bytes() -> int:
    """The current resident set size (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def measure(name: str, iterations: int, body: Callable[[int], None]) -> bool:
    """Runs ``body(i)`` for every i; returns whether memory stayed within the allowances."""
    warm = max(1, iterations // 10)
    t0 = time.perf_counter()
    for i in range(warm):
        body(i)
    gc.collect()
    tracemalloc.start()
    rss0, heap0 = rss_bytes(), tracemalloc.get_traced_memory()[0]
    for i in range(warm, iterations):
        body(i)
    gc.collect()
    rss1, (heap1, heap_peak) = rss_bytes(), tracemalloc.get_traced_memory()
    tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    rss_growth, heap_growth = rss1 - rss0, heap1 - heap0
    ok = rss_growth <= RSS_ALLOWANCE and heap_growth <= HEAP_ALLOWANCE
    mib = 2**20
    print(f"{name:<10} {iterations:>9,} iterations in {elapsed:7.1f} s | RSS {rss0 / mib:8.1f} -> "
          f"{rss1 / mib:8.1f} MiB ({rss_growth / mib:+.2f}, allowed +{RSS_ALLOWANCE / mib:.0f}) | traced heap "
          f"{heap0 / 1024:8.1f} -> "
          f"{heap1 / 1024:8.1f} KiB ({heap_growth / 1024:+.1f}, allowed +{HEAP_ALLOWANCE / 1024:.0f}; peak "
          f"{heap_peak / 1024:.1f}) | {'ok' if ok else 'GROWS'}", flush=True)
    return ok


def steps_phase(steps: int) -> bool:
    float_param = torch.nn.Parameter(torch.zeros(4))
    tensor_param = torch.nn.Parameter(torch.zeros(4))
    sched = S.warmup(100) >> S.cosine(steps, final=0.1)
    float_opt = wrap(torch.optim.SGD([float_param], lr=0.1), sched)
    tensor_opt = wrap(torch.optim.Adam([tensor_param], lr=torch.tensor(0.1), fused=True), sched)
    # no grads: the optimizers' own updates are skipped, so the run times the schedule, not the math
    ok = measure("steps", steps, lambda i: (float_opt.step(), tensor_opt.step()) and None)
    expected = 0.1 * sched(steps)
    got = float_opt.get_last_lr()[0], float(tensor_opt.param_groups[0]["lr"])
    if float_opt.last_step != steps or abs(got[0] - expected) > 1e-15 or abs(got[1] - expected) > 1e-8:
        print(f"steps: wrong final state: step {float_opt.last_step}, LRs {got}, expected {expected}")
        return False
    return ok


def lifetime(i: int) -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    sched = S.warmup(3 + i % 5) >> S.cosine(50, final=0.01)
    opt = wrap(torch.optim.SGD([p], lr=0.1), sched)
    opt.step()
    sd = opt.state_dict()
    opt.load_state_dict(sd)
    try:
        opt.load_state_dict(dict(sd, torchsched=dict(sd["torchsched"], version=99)))
    except ValueError:
        pass
    copy = pickle.loads(pickle.dumps(sched))
    assert copy(2) == sched(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10**6)
    parser.add_argument("--lifetimes", type=int, default=10**5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"soak: torch {torch.__version__}, Python {sys.version.split()[0]}")
    ok = steps_phase(args.steps)
    ok = measure("lifetimes", args.lifetimes, lifetime) and ok
    print("soak: " + ("memory stays flat" if ok else "MEMORY GROWS"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
