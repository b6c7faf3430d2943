"""GPU benchmark of torchsched's CUDA path against torch's schedulers.

    python bench/gpu_bench.py [--out REPORT.md] [--quick]   (default report: bench/results/<device>.md)

Measures, on the current CUDA device:

1. One scheduler step at G = 1, 100 and 1000 param groups, for torch's ``CosineAnnealingLR`` with float LRs,
   the same with one tensor LR per group on the device, and a torchsched ``CudaEngine`` with the same cosine:
   host time per step, GPU time per step (CUDA events around the loop; it includes the GPU waiting for the
   host), GPU busy time per step (sum of the device activities the profiler saw), device launches per step
   (torch.profiler) and host syncs per step (torch.cuda.set_sync_debug_mode("warn")).
2. End to end, a launch-bound model (100 param groups, one small Linear layer each): an eager step with
   fused AdamW and torch's ``CosineAnnealingLR`` against the same step captured whole in a CUDA graph with
   fused capturable AdamW reading torchsched's LR tensors; and the host cost of one graph replay with and
   without the schedule inside.

It prints a markdown table naming the device and the torch version, checks the issue's targets (1 launch per
step whatever G, 0 syncs, no host cost from scheduling in a graph, >= 100x less host time than torch with
tensor LRs at G = 1000, >= 3x end-to-end with the graph) and prints PASS or FAIL for each; the exit status
is 0 when all pass, 1 when one fails, 2 when there is no GPU to measure on. Every number comes from this
run; nothing is estimated.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, Callable

T_MAX = 1000  # the cosine's period, in steps
BASE_LR = 0.1


def no_gpu(message: str) -> int:
    print(f"gpu_bench: {message}", file=sys.stderr)
    print("gpu_bench: nothing was measured. Run this on a machine with a CUDA GPU (make bench-gpu).", file=sys.stderr)
    return 2


def driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


# ---- measuring tools ---------------------------------------------------------------------------------

def timed(torch: Any, step: Callable[[], None], steps: int, warmup: int) -> tuple[float, float, float]:
    """(host µs per step, GPU µs per step by CUDA events, wall µs per step until the GPU is done) over
    ``steps`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    t1 = time.perf_counter()
    end.record()
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    return (t1 - t0) / steps * 1e6, start.elapsed_time(end) / steps * 1e3, (t2 - t0) / steps * 1e6


_PROFILER_SEES_DEVICE: bool | None = None


def profiler_sees_device(torch: Any) -> bool:
    """Whether torch.profiler records device activity here at all (CUPTI works): one known kernel must show."""
    global _PROFILER_SEES_DEVICE
    if _PROFILER_SEES_DEVICE is None:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        probe = torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            probe.add_(1)
            torch.cuda.synchronize()
        _PROFILER_SEES_DEVICE = any(e.device_type == DeviceType.CUDA for e in prof.events())
    return _PROFILER_SEES_DEVICE


def profiled(torch: Any, step: Callable[[], None], steps: int) -> tuple[float | None, float | None, list[str]]:
    """(device activities per step, GPU busy µs per step, distinct names) from torch.profiler; (None, None)
    when the profiler records no device activity at all (no CUPTI)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    # gpu_user_annotation events (record_function ranges such as Optimizer.step, mirrored on the GPU
    # timeline) are device events too but launch nothing and span kernels counted already: torch's own
    # tables leave them out as well.
    device = [e for e in prof.events() if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    if not device:
        # A step with no device work (torch's scheduler on float LRs) launches 0 kernels; n/a only without CUPTI.
        return (0.0, 0.0, []) if profiler_sees_device(torch) else (None, None, [])
    busy = sum(e.time_range.elapsed_us() for e in device)
    return len(device) / steps, busy / steps, sorted({e.name for e in device})


def syncs_per_step(torch: Any, step: Callable[[], None], steps: int) -> float:
    """Synchronizing CUDA calls per step, as torch's sync debug mode reports them."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


# ---- 1. one scheduler step -----------------------------------------------------------------------------

def scheduler_setups(torch: Any, groups: int) -> dict[str, tuple[Callable[[], None], Callable[[], list[float]], Any]]:
    """name -> (step, current LRs as floats (may sync; called outside measurements), keep-alive)."""
    import torchsched._cuda as tc
    from torchsched import schedules as S

    dev = torch.device("cuda", torch.cuda.current_device())
    setups: dict[str, tuple[Callable[[], None], Callable[[], list[float]], Any]] = {}

    def torch_setup(tensor_lrs: bool) -> tuple[Callable[[], None], Callable[[], list[float]], Any]:
        params = [torch.nn.Parameter(torch.zeros(8, device=dev)) for _ in range(groups)]
        pgs = [{"params": [p], "lr": torch.tensor(BASE_LR, device=dev) if tensor_lrs else BASE_LR} for p in params]
        opt = torch.optim.AdamW(pgs, fused=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_MAX)
        opt.step()  # no grads: a no-op that tells the scheduler the optimizer stepped

        def lrs() -> list[float]:
            return [float(g["lr"]) for g in opt.param_groups]
        return sched.step, lrs, (opt, sched)

    setups["torch, float LRs"] = torch_setup(False)
    setups["torch, tensor LRs"] = torch_setup(True)
    engine = tc.CudaEngine(S.cosine(T_MAX, clamp=False), [BASE_LR] * groups, device=dev)
    setups["torchsched"] = (engine.advance, lambda: [float(x) for x in engine.lr_buffer.tolist()], engine)
    return setups


def bench_scheduler(torch: Any, quick: bool) -> tuple[list[dict[str, Any]], list[str]]:
    from torchsched import schedules as S

    oracle = S.cosine(T_MAX, clamp=False)
    rows, problems = [], []
    for groups in (1, 100, 1000):
        for name, (step, lrs, keep) in scheduler_setups(torch, groups).items():
            slow = name == "torch, tensor LRs" and groups >= 100
            steps = (10 if quick else 30) if slow else (200 if quick else 2000)
            host_us, events_us, _ = timed(torch, step, steps, warmup=3)
            launches, busy_us, names = profiled(torch, step, 3)
            syncs = syncs_per_step(torch, step, 3 if slow else 20)
            taken = 3 + steps + 3 + (3 if slow else 20)
            # Same numbers as the closed form at the step each setup reached (torch's chainable cosine drifts
            # a little, more so in float32 tensors).
            want = BASE_LR * oracle(taken)
            got = lrs()
            rtol = 1e-4 if name == "torch, tensor LRs" else 1e-6
            if not all(math.isclose(v, want, rel_tol=rtol, abs_tol=1e-12) for v in got):
                problems.append(f"{name} at G={groups}: LR {got[0]!r} after {taken} steps, closed form {want!r}")
            if name == "torchsched":
                host_lr = keep.lrs()[0]
                if not math.isclose(host_lr, want, rel_tol=1e-12):
                    problems.append(f"torchsched host mirror at G={groups}: {host_lr!r}, closed form {want!r}")
            rows.append({"groups": groups, "setup": name, "host_us": host_us, "events_us": events_us,
                         "busy_us": busy_us, "launches": launches, "syncs": syncs, "names": names})
            del keep
    return rows, problems


# ---- 2. end to end -------------------------------------------------------------------------------------

def capture_step(torch: Any, step: Callable[[], None], optimizer: Any) -> Any:
    """Runs ``step`` three times on a side stream (torch's warm-up before capture), then captures one call of
    it in a CUDA graph, gradients cleared before each call."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "capturable=True but not capturing" during the warm-up
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    return graph


def launch_bound_model(torch: Any, dev: Any, layers: int, width: int) -> Any:
    torch.manual_seed(0)
    mods: list[Any] = []
    for _ in range(layers):
        mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*mods).to(dev)


def bench_end_to_end(torch: Any, quick: bool, layers: int = 100, width: int = 32, batch: int = 16) -> dict[str, Any]:
    import torchsched._cuda as tc
    from torchsched import schedules as S

    dev = torch.device("cuda", torch.cuda.current_device())
    torch.manual_seed(1)
    x = torch.randn(batch, width, device=dev)
    y = torch.randn(batch, width, device=dev)
    warm, steps = 20, (50 if quick else 300)
    out: dict[str, Any] = {"layers": layers, "width": width, "batch": batch, "steps": steps}

    # Eager: fused AdamW (float LRs) and torch's CosineAnnealingLR, one param group per layer.
    model_e = launch_bound_model(torch, dev, layers, width)
    groups_e = [{"params": m.parameters()} for m in model_e if isinstance(m, torch.nn.Linear)]
    opt_e = torch.optim.AdamW(groups_e, lr=1e-3, fused=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched_e = torch.optim.lr_scheduler.CosineAnnealingLR(opt_e, T_max=T_MAX)
    losses_e: list[Any] = []

    def eager_step() -> None:
        opt_e.zero_grad(set_to_none=True)
        loss = (model_e(x) - y).square().mean()
        loss.backward()
        opt_e.step()
        sched_e.step()
        losses_e[:] = [loss]

    out["eager_ms"] = timed(torch, eager_step, steps, warm)[2] / 1e3  # wall time, the GPU done
    torch.cuda.synchronize()
    out["eager_launches"] = profiled(torch, eager_step, 3)[0]
    eager_steps = warm + steps + 3

    # Graph: the whole step (forward, backward, fused capturable AdamW, engine.advance()) in one CUDA graph.
    model_g = launch_bound_model(torch, dev, layers, width)
    groups_g = [{"params": m.parameters()} for m in model_g if isinstance(m, torch.nn.Linear)]
    opt_g = torch.optim.AdamW(groups_g, lr=torch.tensor(1e-3), fused=True, capturable=True)
    engine = tc.CudaEngine(S.cosine(T_MAX, clamp=False), [1e-3] * len(groups_g), device=dev)
    tc.replace_shared_lr_tensors(opt_g, engine, capture=True)
    static_loss: list[Any] = []

    def body() -> None:
        loss = (model_g(x) - y).square().mean()
        loss.backward()
        opt_g.step()
        engine.advance()
        static_loss[:] = [loss]

    graph = capture_step(torch, body, opt_g)
    # The same step without the schedule (a twin model, float LRs), for the host cost of scheduling in a graph.
    model_p = launch_bound_model(torch, dev, layers, width)
    opt_p = torch.optim.AdamW([{"params": m.parameters()} for m in model_p if isinstance(m, torch.nn.Linear)],
                              lr=1e-3, fused=True, capturable=True)

    def plain() -> None:
        (model_p(x) - y).square().mean().backward()
        opt_p.step()

    graph_plain = capture_step(torch, plain, opt_p)
    out["graph_ms"] = timed(torch, graph.replay, steps, warm - 3)[2] / 1e3
    out["graph_kernels"] = profiled(torch, graph.replay, 3)[0]
    graph_steps = warm + steps + 3

    # Host cost of one replay, with and without the schedule in the graph (each timed on an idle GPU).
    samples: dict[bool, list[float]] = {True: [], False: []}
    for i in range(20 if quick else 200):
        for with_schedule in (True, False):
            g = graph if with_schedule else graph_plain
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            g.replay()
            samples[with_schedule].append((time.perf_counter() - t0) * 1e6)
    torch.cuda.synchronize()
    out["replay_us_with"] = statistics.median(samples[True])
    out["replay_us_without"] = statistics.median(samples[False])
    graph_steps += len(samples[True])

    # Numbers agree: the graph advanced the schedule once per replay, to torch's values.
    engine_step = engine.resync()
    out["schedule_ok"] = engine_step == graph_steps
    want = 1e-3 * S.cosine(T_MAX, clamp=False)(engine_step)
    out["engine_lr"] = engine.lrs()[0]
    out["engine_lr_expected"] = want
    out["schedule_ok"] &= math.isclose(engine.lrs()[0], want, rel_tol=1e-12)
    out["schedule_ok"] &= math.isclose(float(engine.lr_buffer[0]), want, rel_tol=1e-6)
    torch_lr = sched_e.get_last_lr()[0]
    out["torch_lr"] = torch_lr
    out["torch_lr_expected"] = 1e-3 * S.cosine(T_MAX, clamp=False)(eager_steps)
    out["schedule_ok"] &= math.isclose(torch_lr, out["torch_lr_expected"], rel_tol=1e-9)
    out["eager_loss"] = float(losses_e[0])
    out["graph_loss"] = float(static_loss[0])
    out["losses_finite"] = math.isfinite(out["eager_loss"]) and math.isfinite(out["graph_loss"])
    return out


# ---- report ----------------------------------------------------------------------------------------------

def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def report(torch: Any, rows: list[dict[str, Any]], e2e: dict[str, Any], problems: list[str]) -> tuple[str, bool]:
    import torchsched
    from torchsched import _core

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    lines = [
        "# torchsched GPU benchmark",
        "",
        f"- device: **{torch.cuda.get_device_name()}** (sm_{props.major}{props.minor}, "
        f"{props.total_memory / 2**30:.0f} GiB), driver {driver_version()}",
        f"- torch **{torch.__version__}** (CUDA {torch.version.cuda}), torchsched {torchsched.__version__} "
        f"(core built with CUDA: {_core.built_with_cuda()}), Python {platform.python_version()}",
        f"- run: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"`python bench/gpu_bench.py`",
        "",
        "## One scheduler step (cosine, T_max = 1000)",
        "",
        "| G | setup | host µs/step | GPU µs/step (events) | GPU busy µs/step | device launches/step | syncs/step |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['groups']} | {r['setup']} | {fmt(r['host_us'])} | {fmt(r['events_us'])} | "
                     f"{fmt(r['busy_us'])} | {fmt(r['launches'])} | {fmt(r['syncs'], 2)} |")
    lines += [
        "",
        "GPU µs/step (events) spans the loop on the GPU timeline, so it includes time the GPU waited for the host. "
        "Launches and busy time come from torch.profiler; syncs from torch's sync debug mode.",
        "",
        f"## End to end: {e2e['layers']} param groups of Linear({e2e['width']}, {e2e['width']}) + ReLU, "
        f"batch {e2e['batch']}, {e2e['steps']} timed steps",
        "",
        "| setup | ms/step | device kernels/step | final loss |",
        "|---|---:|---:|---:|",
        f"| eager: fused AdamW (float LRs) + torch CosineAnnealingLR | {fmt(e2e['eager_ms'], 3)} | "
        f"{fmt(e2e['eager_launches'])} | {e2e['eager_loss']:.6g} |",
        f"| CUDA graph: forward, backward, fused capturable AdamW, torchsched advance (1 graph launch) | "
        f"{fmt(e2e['graph_ms'], 3)} | {fmt(e2e['graph_kernels'])} | {e2e['graph_loss']:.6g} |",
        "",
        f"Speedup: **{e2e['eager_ms'] / e2e['graph_ms']:.2f}x**. Host time of one replay on an idle GPU (median): "
        f"{e2e['replay_us_with']:.1f} µs with the schedule in the graph, {e2e['replay_us_without']:.1f} µs without.",
        "",
        "## Targets",
        "",
    ]
    ours = {r["groups"]: r for r in rows if r["setup"] == "torchsched"}
    tensor = {r["groups"]: r for r in rows if r["setup"] == "torch, tensor LRs"}
    checks: list[tuple[bool, str]] = []
    launches = [ours[g]["launches"] for g in sorted(ours)]
    checks.append((all(v is not None and v == 1.0 for v in launches),
                   f"1 launch per step whatever G (G = 1, 100, 1000: {', '.join(fmt(v, 2) for v in launches)})"))
    syncs = [ours[g]["syncs"] for g in sorted(ours)]
    checks.append((all(v == 0 for v in syncs), f"0 host syncs per step ({', '.join(fmt(v, 2) for v in syncs)})"))
    checks.append((e2e["replay_us_with"] <= 1.10 * e2e["replay_us_without"],
                   f"no host cost from scheduling in a graph: a replay costs the host the same with the schedule "
                   f"inside (within 10%: {e2e['replay_us_with']:.1f} µs with, {e2e['replay_us_without']:.1f} µs without)"))
    ratio = tensor[1000]["host_us"] / ours[1000]["host_us"]
    checks.append((ratio >= 100, f">= 100x less host time per step than torch with tensor LRs at G = 1000 "
                                 f"({ratio:,.0f}x)"))
    speedup = e2e["eager_ms"] / e2e["graph_ms"]
    checks.append((speedup >= 3, f">= 3x end-to-end with the whole step in a CUDA graph ({speedup:.2f}x)"))
    checks.append((e2e["schedule_ok"] and e2e["losses_finite"],
                   f"numbers agree: the graph advanced the schedule once per replay (engine LR {e2e['engine_lr']:.9g}"
                   f" vs closed form {e2e['engine_lr_expected']:.9g}; torch {e2e['torch_lr']:.9g} vs "
                   f"{e2e['torch_lr_expected']:.9g}), finite losses"))
    checks.append((not problems, "every setup's LRs equal the closed form at the step it reached"
                   + ("" if not problems else ": " + "; ".join(problems))))
    for ok, text in checks:
        lines.append(f"- **{'PASS' if ok else 'FAIL'}** {text}")
    return "\n".join(lines) + "\n", all(ok for ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="where to write the markdown report (default: "
                        "bench/results/<device name>.md beside this script)")
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, not for the record)")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        return no_gpu("torch is not installed")
    if not torch.cuda.is_available():
        return no_gpu(f"no CUDA GPU is available to torch {torch.__version__} (CUDA {torch.version.cuda})")
    from torchsched import _core
    from torchsched._cuda import REBUILD_HINT

    if not _core.built_with_cuda():
        return no_gpu(REBUILD_HINT)
    if not _core.cuda_available():
        return no_gpu("torch sees a GPU but torchsched's core does not: the CUDA runtime it links statically may "
                      "be newer than the driver; rebuild with an nvcc the driver supports")

    rows, problems = bench_scheduler(torch, args.quick)
    e2e = bench_end_to_end(torch, args.quick)
    text, ok = report(torch, rows, e2e, problems)
    print(text)
    if not args.out:
        slug = "".join(c if c.isalnum() else "-" for c in torch.cuda.get_device_name().lower()).strip("-")
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{slug}.md")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
