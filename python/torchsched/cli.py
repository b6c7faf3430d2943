"""The ``torchsched`` command line (``python -m torchsched``): plot, find-lr, bench, demo, gallery.

Every command prints ``torchsched: error: ...`` on one line and exits non-zero when it fails: 2 for a bad
spec or bad arguments, 1 for anything else. ``--help`` on each command shows examples.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from . import _validate as check

__all__ = ["main", "build_parser", "GALLERY"]

PROG = "torchsched"


class UsageError(Exception):
    """Bad arguments: exit status 2. ``prog`` is the command it concerns."""

    def __init__(self, message: str, prog: str = PROG) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)", self.prog)


def _count_option(command: str, name: str, value: Any, minimum: int, maximum: int = check.STEP_LIMIT) -> int:
    """An integer option of ``command``, checked as every count is; a bad one is a usage error (status 2)."""
    try:
        return check.integer(name, value, minimum, maximum)
    except ValueError as e:
        raise UsageError(str(e), f"{PROG} {command}") from None


def _positive_option(command: str, name: str, value: Any) -> float:
    """A real option > 0 of ``command`` (an LR); nan, inf and negatives are usage errors (status 2)."""
    try:
        return check.positive(name, value)
    except ValueError as e:
        raise UsageError(str(e), f"{PROG} {command}") from None


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from None


def _save(fig: Any, path: str, dpi: int = 110) -> None:
    try:
        with np.errstate(all="ignore"):  # matplotlib's tick arithmetic overflows near float64's limit
            fig.savefig(path, dpi=dpi, format="png")
    except OSError as e:
        raise RuntimeError(f"cannot write {path}: {e.strerror or e}") from None


# ---- plot ----------------------------------------------------------------------------------------

MAX_EVAL = 2_000_000
MAX_DRAW = 20_000


def _default_steps(sched: Any) -> int:
    d = sched.duration
    if d is not None and math.isfinite(d) and d >= 1:
        return int(math.ceil(d)) + 1
    return 1000


def _key_points(sched: Any, steps: int) -> tuple[list[tuple[int, float, str]], bool]:
    """Rows ``(step, value, note)`` for the table: start, quartiles, end, max, min and phase boundaries."""
    exact = steps <= MAX_EVAL
    grid = np.arange(steps, dtype=np.int64) if exact else np.unique(
        np.linspace(0, steps - 1, MAX_EVAL).round().astype(np.int64))
    vals = sched.values(grid)
    notes: dict[int, list[str]] = {}

    def add(step: int, note: str) -> None:
        notes.setdefault(int(step), [])
        if note and note not in notes[int(step)]:
            notes[int(step)].append(note)

    add(0, "start")
    for q in (0.25, 0.5, 0.75):
        add(int(round(q * (steps - 1))), "")
    add(steps - 1, "end")
    add(int(grid[int(np.argmax(vals))]), "max")
    add(int(grid[int(np.argmin(vals))]), "min")
    bounds = sched._args.get("boundaries") if getattr(sched, "_name", "") == "sequence" else None
    for b in bounds or []:
        if 0 <= float(b) < steps:
            add(int(math.ceil(float(b))), "boundary")
    order = sorted(notes)
    values = sched.values(order)
    return [(s, float(v), ", ".join(notes[s])) for s, v in zip(order, values)], exact


def cmd_plot(args: argparse.Namespace) -> int:
    from . import spec as _spec

    sched, options = _spec.resolve(args.spec)
    steps = args.steps if args.steps is not None else options.get("steps") or _default_steps(sched)
    steps = _count_option("plot", "--steps", steps, 2)
    base = _positive_option("plot", "--base-lr", args.base_lr)
    grid = np.unique(np.linspace(0, steps - 1, min(steps, MAX_DRAW)).round().astype(np.int64))
    try:  # a schedule that overflows in the range asked for is a bad spec for that range
        rows, exact = _key_points(sched, steps)
        vals = base * sched.values(grid)
    except ValueError as e:
        raise _spec.SpecError(str(e)) from None
    label = args.spec if not _spec.is_file_spec(args.spec) else f"{args.spec}"
    print(label)
    print(f"{steps} steps, lr = {_fmt(base)} x schedule" + ("" if exact else f" (max/min over {MAX_EVAL} samples)"))
    print(f"{'step':>12}  {'lr':>12}  note")
    for s, v, note in rows:
        print(f"{s:>12}  {_fmt(base * v):>12}  {note}")

    _require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(grid, vals, lw=1.6)
    for s, v, note in rows:
        if "boundary" in note:
            ax.axvline(s, color="0.8", lw=0.8, ls="--", zorder=0)
    pts = [(s, base * v) for s, v, note in rows if note]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color="C3", ms=4)
    if args.log:
        if np.all(vals > 0):
            ax.set_yscale("log")
        else:
            print("note: --log ignored, the schedule reaches 0", file=sys.stderr)
    title = label if len(label) <= 90 else label[:87] + "..."
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate" if base != 1 else "learning rate (x base LR)")
    ax.grid(True, alpha=0.3)
    _save(fig, args.output)
    print(f"wrote {args.output}")
    return 0


# ---- find-lr -------------------------------------------------------------------------------------

def demo_task(seed: int = 0, samples: int = 2048, batch_size: int = 64) -> tuple[Any, Any, Any, Any]:
    """The embedded range-test task: 3-class 2-D spirals and a small MLP (no downloads).

    Returns ``(model, optimizer, criterion, loader)`` with SGD (momentum 0.9) at lr 0.1.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    per = samples // 3
    xs, ys = [], []
    for c in range(3):
        r = torch.linspace(0.05, 1.0, per)
        t = c * 2 * math.pi / 3 + 3.0 * r + 0.25 * torch.randn(per, generator=g)
        xs.append(torch.stack((r * torch.cos(t), r * torch.sin(t)), dim=1))
        ys.append(torch.full((per,), c, dtype=torch.int64))
    x, y = torch.cat(xs), torch.cat(ys)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                         shuffle=True, generator=torch.Generator().manual_seed(seed))
    model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                torch.nn.ReLU(), torch.nn.Linear(64, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, torch.nn.CrossEntropyLoss(), loader


def cmd_find_lr(args: argparse.Namespace) -> int:
    if not args.demo:
        raise UsageError("only --demo runs from the command line; in Python call "
                         "torchsched.find_lr(model, optimizer, criterion, loader, ...)", f"{PROG} find-lr")
    command = "find-lr"
    start = _positive_option(command, "--start-lr", args.start_lr)
    if not start < _positive_option(command, "--end-lr", args.end_lr):
        raise UsageError(f"--start-lr must be < --end-lr, got {args.start_lr!r} and {args.end_lr!r}",
                         f"{PROG} {command}")
    _count_option(command, "--num-iter", args.num_iter, 10)  # what find_lr needs for a curve
    _count_option(command, "--check-every", args.check_every, 1)
    _count_option(command, "--seed", args.seed, 0)
    from .lr_finder import find_lr

    import torch

    torch.set_num_threads(1)  # a model this small gains nothing from threads, and loses on a busy machine
    model, opt, criterion, loader = demo_task(args.seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the demo loader is cycled on purpose
        result = find_lr(model, opt, criterion, loader, start_lr=args.start_lr, end_lr=args.end_lr,
                         num_iter=args.num_iter, check_every=args.check_every, progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    checks = 1 + sum(1 for i in range(1, result.iterations_run) if (i + 1) % result.check_every == 0)
    print("LR range test on the embedded task: 3-class spirals, MLP 2-64-64-3, SGD momentum 0.9, batch 64")
    print(f"{len(result)} iterations recorded of {args.num_iter} (lr {_fmt(result.lrs[0])} .. "
          f"{_fmt(result.lrs[-1])}), {result.iterations_run} run, "
          + (f"diverged at iteration {result.diverged_at}" if result.diverged else "no divergence")
          + f"; {checks} host copies (check every {result.check_every}); {elapsed:.2f} s")
    print(f"{'suggestion':>12}  {'lr':>10}")
    for name, lr in result.suggestions.items():
        print(f"{name:>12}  {_fmt(lr):>10}")
    low, high = result.lr_range()
    print(f"usable range (CLR): base_lr {_fmt(low)}, max_lr {_fmt(high)}")
    print(f"one-cycle for 1000 steps: {result.to_schedule('one_cycle', total_steps=1000)!r}")
    _require_matplotlib()
    fig = result.plot(None, suggestion=args.suggestion)
    _save(fig, args.output)
    print(f"wrote {args.output}")
    return 0


# ---- bench ---------------------------------------------------------------------------------------

def _bench_cases(total: int, run: int) -> list[tuple[str, Callable[..., Any], dict[str, Any], Any, float]]:
    """(name, torch class, kwargs, equivalent torchsched schedule, base LR of the engine); ``run`` steps are
    timed, so StepLR decays about four times and every final LR is a number worth comparing."""
    import torch

    from . import schedules as S

    lrs = torch.optim.lr_scheduler
    size = max(1, run // 4)
    return [
        ("StepLR", lrs.StepLR, dict(step_size=size, gamma=0.5), S.step(size, gamma=0.5), 0.1),
        ("CosineAnnealingLR", lrs.CosineAnnealingLR, dict(T_max=total), S.cosine(total, clamp=False), 0.1),
        ("OneCycleLR", lrs.OneCycleLR, dict(max_lr=1.0, total_steps=total), S.one_cycle(total, max=1.0), 1.0),
    ]


def _best_time(fn: Callable[[], Any], steps: int, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / steps


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ._engine import Engine

    try:
        groups_list = [int(g) for g in args.groups.split(",") if g.strip()]
    except ValueError:
        raise UsageError(f"--groups must be comma-separated integers, got {args.groups!r}",
                         f"{PROG} bench") from None
    if not groups_list:
        raise UsageError(f"--groups must be comma-separated integers, got {args.groups!r}", f"{PROG} bench")
    for groups in groups_list:
        _count_option("bench", "--groups", groups, 1)
    _count_option("bench", "--steps", args.steps, 1)
    _count_option("bench", "--repeat", args.repeat, 1)
    drop_in: Any
    try:
        from . import lr_scheduler as drop_in  # written separately; optional here
    except ImportError:
        drop_in = None
    total = (args.steps + 1) * args.repeat * 4 + 10  # long enough that no schedule runs out

    def optimizer(groups: int) -> Any:
        params = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)]
        opt = torch.optim.SGD(params, lr=0.1)
        return opt

    print(f"scheduler.step() overhead on this machine: best of {args.repeat} x {args.steps} steps, "
          f"torch {torch.__version__}, CPU param groups")
    header = f"{'scheduler':<18} {'groups':>6} {'torch us':>10} {'core us':>9} {'x faster':>8}"
    if drop_in is not None:
        header += f" {'drop-in us':>10} {'x faster':>8}"
    header += "  agree"
    print(header)
    all_agree = True
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that optimizer.step() was never called
        for name, cls, kwargs, sched, base in _bench_cases(total, args.steps * args.repeat):
            for groups in groups_list:
                opt_t = optimizer(groups)
                torch_sched = cls(opt_t, **kwargs)
                t_torch = _best_time(torch_sched.step, args.steps, args.repeat)

                opt_c = optimizer(groups)
                engine = Engine(sched, [base] * groups)
                core: Any = engine._core  # type: ignore[has-type]
                core.write_dicts(opt_c.param_groups, "lr")
                t_core = _best_time(lambda: core.advance_dicts(opt_c.param_groups, "lr"),  # noqa: B023
                                    args.steps, args.repeat)
                ref = np.array([g["lr"] for g in opt_t.param_groups])
                ours = np.array([g["lr"] for g in opt_c.param_groups])
                agree = bool(np.allclose(ref, ours, rtol=1e-6, atol=0.0))
                line = f"{name:<18} {groups:>6} {t_torch * 1e6:>10.2f} {t_core * 1e6:>9.2f} {t_torch / t_core:>8.1f}"
                if drop_in is not None:
                    dcls = getattr(drop_in, name, None)
                    try:
                        if dcls is None:
                            raise AttributeError(f"torchsched.lr_scheduler has no {name}")
                        opt_d = optimizer(groups)
                        d_sched = dcls(opt_d, **kwargs)
                        t_drop = _best_time(d_sched.step, args.steps, args.repeat)
                        mine = np.array([float(g["lr"]) for g in opt_d.param_groups])
                        agree = agree and bool(np.allclose(ref, mine, rtol=1e-6, atol=0.0))
                        line += f" {t_drop * 1e6:>10.2f} {t_torch / t_drop:>8.1f}"
                    except Exception as e:  # the drop-in module is someone else's work in progress
                        line += f" {'-':>10} {'-':>8}"
                        notes.append(f"{name} drop-in skipped: {' '.join(str(e).split())[:120]}")
                line += "  " + ("yes" if agree else "NO")
                all_agree &= agree
                print(line, flush=True)
    print("torch: torch.optim.lr_scheduler.<name>.step(); core: one torchsched core call storing every "
          "group's LR (Engine -> param groups)" + ("; drop-in: torchsched.lr_scheduler.<name>.step()"
                                                  if drop_in is not None else ""))
    if drop_in is None:
        print("note: torchsched.lr_scheduler is not importable here; the drop-in rows are skipped")
    for n in dict.fromkeys(notes):
        print(f"note: {n}")
    if not all_agree:
        print(f"{PROG}: error: torch and torchsched learning rates disagree (see 'agree')", file=sys.stderr)
        return 1
    return 0


# ---- demo ----------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    import importlib

    rest = list(args.rest)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        demo = importlib.import_module("torchsched.demo")
    except ModuleNotFoundError as e:
        if e.name in ("torchsched.demo",):
            raise RuntimeError("torchsched.demo is not available in this installation") from None
        raise
    code = demo.main(rest)
    return int(code or 0)


# ---- gallery -------------------------------------------------------------------------------------

#: (title, spec string) pairs drawn by ``torchsched gallery``, each over 1000 steps.
GALLERY: list[tuple[str, str]] = [
    ("step", "step(250, gamma=0.5)"),
    ("multistep", "multistep([300, 600, 850], gamma=0.3)"),
    ("exponential", "exponential(0.996)"),
    ("cosine", "cosine(1000, final=0.05)"),
    ("warmup >> cosine", "warmup(linear, 100) >> cosine(900, final=0.1)"),
    ("cosine restarts", "cosine_restarts(200, period_mult=1.5, decay=0.8)"),
    ("cyclic (triangular2)", "cyclic(0.1, 1.0, 100, mode=triangular2)"),
    ("one-cycle", "one_cycle(1000, max=1.0)"),
    ("warmup-stable-decay", 'warmup_stable_decay(100, 600, 300, decay_shape="1-sqrt")'),
    ("polynomial (power 2)", "polynomial(1000, power=2.0)"),
    ("warmup >> inverse sqrt", "warmup(linear, 100) >> inverse_sqrt(100)"),
    ("0.5 x tanh", "0.5 * tanh(1000)"),
]


def cmd_gallery(args: argparse.Namespace) -> int:
    from . import spec as _spec

    steps = _count_option("gallery", "--steps", args.steps, 2, MAX_EVAL)  # every step of every panel is drawn
    scheds = [(title, text, _spec.parse(text)) for title, text in GALLERY]
    marks = [0, steps // 4, steps // 2, (3 * steps) // 4, steps - 1]
    print(f"{'family':<24} {'spec':<55} " + " ".join(f"{'f(' + str(m) + ')':>9}" for m in marks))
    for title, text, s in scheds:
        vals = s.values(marks)
        print(f"{title:<24} {text:<55} " + " ".join(f"{v:>9.4g}" for v in vals))
    _require_matplotlib()
    from matplotlib.figure import Figure

    cols = 3
    rows = (len(scheds) + cols - 1) // cols
    fig = Figure(figsize=(4.4 * cols, 2.7 * rows), layout="constrained")
    grid = np.arange(steps)
    for i, (title, text, s) in enumerate(scheds):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(grid, s.values(grid), lw=1.5, color=f"C{i % 10}")
        ax.set_title(title, fontsize=10, fontweight="bold", pad=14)
        ax.text(0.5, 1.015, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="0.35",
                family="monospace")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"torchsched schedule families ({steps} steps, factors of the base LR)")
    _save(fig, args.output)
    print(f"wrote {args.output}")
    return 0


# ---- parser --------------------------------------------------------------------------------------

_FMT = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog=PROG, formatter_class=_FMT,
                description="Learning-rate schedules computed on the device for PyTorch: plots, the LR range "
                            "test, benchmarks.",
                epilog="examples:\n"
                       "  torchsched plot 'warmup(linear, 1000) >> cosine(100000, final=0.1)' -o lr.png\n"
                       "  torchsched find-lr --demo -o lr_find.png\n"
                       "  torchsched bench\n"
                       "  torchsched gallery -o gallery.png\n"
                       "  torchsched demo\n"
                       "\nrun 'torchsched COMMAND --help' for a command's options")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sp = sub.add_parser(
        "plot", formatter_class=_FMT, help="render a schedule to PNG and print its key points",
        description="Render a schedule to a PNG and print a table of its key points (start, quartiles, end, "
                    "max, min, phase boundaries). SPEC is a spec string or a .json/.yaml/.yml file "
                    "(format: see torchsched.spec). Schedules are factors of the base LR (--base-lr).",
        epilog="examples:\n"
               "  torchsched plot 'warmup(linear, 1000) >> cosine(100000, final=0.1)'\n"
               "  torchsched plot '0.5 * step(30, gamma=0.1)' --steps 100 -o step.png\n"
               "  torchsched plot 'one_cycle(1000, max=1.0)' --log\n"
               "  torchsched plot schedule.json --base-lr 3e-4\n"
               "\nspec syntax: builder calls from torchsched.schedules with their arguments; a bare word\n"
               "sets a shape or mode (warmup(linear, 1000)); a >> b runs b after a; a * b and 0.5 * a\n"
               "multiply. A bad spec exits with status 2.")
    sp.add_argument("spec", metavar="SPEC", help="spec string or .json/.yaml/.yml file")
    sp.add_argument("--steps", type=int, default=None,
                    help="steps to draw (default: the file's 'steps', else the schedule's length + 1, else 1000)")
    sp.add_argument("-o", "--output", default="schedule.png", help="PNG to write (default: schedule.png)")
    sp.add_argument("--base-lr", type=float, default=1.0, help="multiply the schedule by this LR (default: 1)")
    sp.add_argument("--log", action="store_true", help="log-scale y axis")
    sp.set_defaults(func=cmd_plot)

    fp = sub.add_parser(
        "find-lr", formatter_class=_FMT, help="run the LR range test on an embedded demo task",
        description="Run the LR range test (Smith 2017) with torchsched.find_lr on an embedded synthetic task "
                    "(3-class spirals, small MLP, SGD with momentum; no downloads), print the suggestions and "
                    "write the loss-against-LR plot. For your own model call torchsched.find_lr from Python.",
        epilog="examples:\n"
               "  torchsched find-lr --demo\n"
               "  torchsched find-lr --demo -o lr_find.png --num-iter 200 --suggestion all\n"
               "  torchsched find-lr --demo --check-every 1 --no-progress")
    fp.add_argument("--demo", action="store_true", help="use the embedded synthetic task (required)")
    fp.add_argument("-o", "--output", default="lr_find.png", help="PNG to write (default: lr_find.png)")
    fp.add_argument("--start-lr", type=float, default=1e-4, help="first LR (default: 1e-4)")
    fp.add_argument("--end-lr", type=float, default=10.0, help="last LR (default: 10)")
    fp.add_argument("--num-iter", type=int, default=100, help="iterations (default: 100)")
    fp.add_argument("--check-every", type=int, default=10, help="iterations between divergence checks (default: 10)")
    fp.add_argument("--suggestion", default="steepest", choices=["steepest", "valley", "minimum/10", "all"],
                    help="suggestion to mark on the plot (default: steepest)")
    fp.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default: 0)")
    fp.add_argument("--no-progress", action="store_true", help="no progress bar")
    fp.set_defaults(func=cmd_find_lr)

    bp = sub.add_parser(
        "bench", formatter_class=_FMT, help="scheduler.step() overhead: torch against torchsched",
        description="Measure this machine's per-step scheduler overhead of torch.optim.lr_scheduler against "
                    "torchsched (one core call for all groups; and the torchsched.lr_scheduler drop-ins when "
                    "that module is importable) for a few schedulers and group counts, in the same run, and "
                    "print a ratio table. Both sides must end on the same learning rates ('agree').",
        epilog="examples:\n"
               "  torchsched bench\n"
               "  torchsched bench --groups 1,100,1000 --steps 5000\n"
               "  torchsched bench --steps 200 --repeat 2   # quick look")
    bp.add_argument("--groups", default="1,10,100", help="comma-separated param-group counts (default: 1,10,100)")
    bp.add_argument("--steps", type=int, default=2000, help="steps per timing (default: 2000)")
    bp.add_argument("--repeat", type=int, default=5, help="timings per case, best kept (default: 5)")
    bp.set_defaults(func=cmd_bench)

    dp = sub.add_parser(
        "demo", formatter_class=_FMT, help="run torchsched.demo (the end-to-end demo)",
        description="Run torchsched.demo.main with the remaining arguments.",
        epilog="examples:\n"
               "  torchsched demo\n"
               "  torchsched demo -- --help     # the demo's own options")
    dp.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to torchsched.demo.main")
    dp.set_defaults(func=cmd_demo)

    gp = sub.add_parser(
        "gallery", formatter_class=_FMT, help="PNG grid of schedule families and a table of values",
        description="Draw a grid of schedule families (each from a spec string) into one PNG and print a table "
                    "of their values at a few steps.",
        epilog="examples:\n"
               "  torchsched gallery\n"
               "  torchsched gallery -o families.png --steps 2000")
    gp.add_argument("-o", "--output", default="gallery.png", help="PNG to write (default: gallery.png)")
    gp.add_argument("--steps", type=int, default=1000, help="steps per panel (default: 1000)")
    gp.set_defaults(func=cmd_gallery)
    return p


def _error(msg: str) -> None:
    print(f"{PROG}: error: {' '.join(str(msg).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    from .spec import SpecError

    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if args_list[:1] == ["demo"] and args_list[1:] not in (["-h"], ["--help"]):
            # Everything after 'demo' belongs to torchsched.demo (argparse.REMAINDER drops leading options).
            args = argparse.Namespace(func=cmd_demo, rest=args_list[1:])
        else:
            args = parser.parse_args(args_list)
        if getattr(args, "func", None) is None:
            raise UsageError(f"choose a command: plot, find-lr, bench, demo, gallery (see {PROG} --help)")
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"{e.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except SpecError as e:
        _error(f"bad spec: {e}")
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except SystemExit as e:  # --help / --version
        return int(e.code or 0) if isinstance(e.code, int) or e.code is None else 1
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        _error(str(e) or type(e).__name__)
        return 1
    except Exception as e:  # noqa: BLE001 - a command line prints one line, never a traceback
        _error(f"{type(e).__name__}: {e}")
        return 1
