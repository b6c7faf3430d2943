"""``python -m torchsched demo``: train a small model with ``wrap(AdamW)``, warmup-then-cosine and plateau.

The task is embedded (three interleaved spirals, generated from a seed: nothing is downloaded). The model
is a small MLP whose param groups come from :func:`torchsched.param_groups` (layer-wise LR decay, no weight
decay on biases and norms), the optimizer is AdamW wrapped by :func:`torchsched.wrap`. The schedule is
warmup then cosine times a reduce-on-plateau factor (:func:`torchsched.schedules.plateau`), fed a held-out
loss every ``--eval-every`` steps through ``wrapped.observe``. At the end the demo
prints the loss and accuracy, measures the per-step scheduling overhead of ``wrap()`` against the same
schedule in torch (``LambdaLR``, the way Transformers' ``get_cosine_schedule_with_warmup`` writes it) in
the same run, checks that both give the same LRs, and writes a PNG of LR and loss against step, the
plateau reductions marked.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import _validate as check
from . import schedules as S
from .optim import wrap
from .param_groups import param_groups

CLASSES = 3


def spirals(n: int, *, seed: int, noise: float = 0.08) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points on three interleaved spiral arms (features: x, y), labels 0..2."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    radius = torch.rand(n, generator=gen) * 0.9 + 0.1
    angle = labels * (2 * math.pi / CLASSES) + radius * 3.0 * math.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return points + noise * radius.unsqueeze(1) * torch.randn(n, 2, generator=gen), labels


class MLP(nn.Module):
    """Fourier features, then residual blocks of LayerNorm + Linear + GELU, then a linear head."""

    def __init__(self, width: int = 64, depth: int = 3, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(2, width // 2, generator=gen) * 2.0)
        self.embed = nn.Linear(width, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        freqs: torch.Tensor = self.freqs  # type: ignore[assignment]
        z = x @ freqs
        h = self.embed(torch.cat([torch.sin(z), torch.cos(z)], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.norm(h))


def torch_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Warmup then cosine as a plain-Python LambdaLR factor (the torch way to write this schedule)."""
    def factor(t: int) -> float:
        if t < warmup:
            return t / warmup
        progress = min(t - warmup, total - warmup) / (total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def make_model(seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP(seed=seed)


def _groups(model: nn.Module, lr: float, *, scale_lr: bool = False) -> list[dict[str, Any]]:
    return param_groups(model, lr=lr, weight_decay=0.05, layer_decay=0.8, scale_lr=scale_lr)


# ---- scheduling overhead, measured as the bench does it -------------------------------------------------

def measure_overhead(model: nn.Module, *, lr: float, warmup: int, total: int, fused: bool,
                     pairs: int = 400) -> dict[str, Any]:
    """Per-step scheduling overhead of torch's LambdaLR and of wrap(), on AdamW over ``model``'s groups.

    Each side alternates a bare ``optimizer.step`` with a scheduled step on the same optimizer; step hooks
    stamp the optimizer's own update, and the overhead of a pair is (scheduled step minus its update) minus
    (bare step minus its update). Medians over ``pairs`` pairs. Also records both LR sequences. The torch
    side is what a torch user writes: AdamW with float LRs (layer decay folded in) and a LambdaLR.
    """
    def build(kind: str) -> tuple[Callable[[], Any], Callable[[], Any], list[float], list[list[float]],
                                  torch.optim.Optimizer]:
        copy = make_model(0)
        copy.load_state_dict(model.state_dict())
        for p in copy.parameters():
            p.grad = torch.randn_like(p) * 1e-3
        if kind == "torch":  # layer decay folded into each group's lr; LambdaLR scales it
            opt = torch.optim.AdamW(_groups(copy, lr, scale_lr=True), fused=fused)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, torch_lambda(warmup, total))

            def scheduled() -> None:
                opt.step()
                sched.step()
        else:
            opt = torch.optim.AdamW(_groups(copy, lr), fused=fused)
            scheduled = wrap(opt, S.warmup(warmup) >> S.cosine(total - warmup)).step
        stamps = [0.0, 0.0]
        opt.register_step_pre_hook(lambda o, a, k: stamps.__setitem__(0, time.perf_counter()))
        opt.register_step_post_hook(lambda o, a, k: stamps.__setitem__(1, time.perf_counter()))
        bare = type(opt).step.__get__(opt)  # the class's step: no scheduler, no wrapper on the instance
        return bare, scheduled, stamps, [], opt

    sides = {kind: build(kind) for kind in ("torch", "wrap")}
    diffs: dict[str, list[float]] = {kind: [] for kind in sides}
    clock = time.perf_counter
    chunk = 20
    for start in range(0, pairs, chunk):
        for kind, (bare, scheduled, stamps, lrs, opt) in sides.items():  # the sides take turns, chunk by chunk
            bare()  # untimed: the caches now hold this side's optimizer
            for i in range(start, min(pairs, start + chunk)):
                outside = {}
                order = ((0, bare), (1, scheduled)) if i % 2 == 0 else ((1, scheduled), (0, bare))
                for which, fn in order:
                    t0 = clock()
                    fn()
                    t1 = clock()
                    outside[which] = (t1 - t0) - (stamps[1] - stamps[0])
                diffs[kind].append(outside[1] - outside[0])
                lrs.append([float(g["lr"]) for g in opt.param_groups])
    torch_lrs, wrap_lrs = sides["torch"][3], sides["wrap"][3]
    worst = max(abs(a - b) / max(abs(a), 1e-300)
                for row_t, row_w in zip(torch_lrs, wrap_lrs) for a, b in zip(row_t, row_w) if a or b)
    return {
        "groups": len(sides["wrap"][4].param_groups),
        "torch_us": statistics.median(diffs["torch"]) * 1e6,
        "wrap_us": statistics.median(diffs["wrap"]) * 1e6,
        "max_rel_lr_diff": worst,
        "pairs": pairs,
    }


# ---- the demo ----------------------------------------------------------------------------------------

def train(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm  # type: ignore[import-untyped]

    x, y = spirals(args.points, seed=args.seed)
    x_val, y_val = spirals(args.points // 3, seed=args.seed + 2)  # held out: drawn from another seed
    model = make_model(args.seed)
    opt = torch.optim.AdamW(_groups(model, args.lr), fused=args.fused)
    # the plateau factor multiplies the whole warmup-then-cosine, so a reduction shows at once
    plateau = S.plateau(factor=args.plateau_factor, patience=args.patience)
    schedule = (S.warmup(args.warmup) >> S.cosine(args.steps - args.warmup)) * plateau
    optimizer = wrap(opt, schedule)
    gen = torch.Generator().manual_seed(args.seed + 1)
    loss_fn = nn.CrossEntropyLoss()
    steps, lrs, losses = [], [], []
    val_steps: list[int] = []
    val_losses: list[float] = []
    reductions: list[int] = []
    bar = tqdm(range(args.steps), desc="train", unit="step", disable=args.no_progress, mininterval=0.25,
               file=sys.stderr)
    start = time.perf_counter()
    for step in bar:
        idx = torch.randint(0, args.points, (args.batch,), generator=gen)
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        steps.append(step)
        lrs.append(optimizer.get_last_lr())  # the LRs this step used (host mirror: no sync)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % args.eval_every == 0:
            with torch.no_grad():
                val_loss = loss_fn(model(x_val), y_val)
            before = optimizer.get_last_lr()[0]
            optimizer.observe(val_loss)  # a tensor: the rule decides where the loss lies, no host read
            if optimizer.get_last_lr()[0] < before:  # CPU params: the host mirror is exact
                reductions.append(step + 1)
            val_steps.append(step + 1)
            val_losses.append(float(val_loss))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{statistics.fmean(losses[-50:]):.3f}", lr=f"{max(lrs[-1]):.2e}")
    bar.close()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        logits = model(x)
        final_loss = float(loss_fn(logits, y))
        accuracy = float((logits.argmax(dim=1) == y).float().mean())
    names = [g["name"] for g in optimizer.param_groups]
    depths = [g["depth"] for g in optimizer.param_groups]
    return {"model": model, "steps": steps, "lrs": lrs, "losses": losses, "final_loss": final_loss,
            "accuracy": accuracy, "seconds": seconds, "names": names, "depths": depths, "optimizer": optimizer,
            "val_steps": val_steps, "val_losses": val_losses, "reductions": reductions}


def plot(result: dict[str, Any], out: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, lrs, losses = result["steps"], result["lrs"], result["losses"]
    fig, (ax_lr, ax_loss) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    first_of_depth: dict[int, int] = {}  # a depth's decay and no-decay groups share one LR: one line each
    for i, depth in enumerate(result["depths"]):
        first_of_depth.setdefault(depth, i)
    for depth, i in sorted(first_of_depth.items(), reverse=True):
        ax_lr.plot(steps, [row[i] for row in lrs], lw=1.5, label=f"depth {depth}")
    for k, at in enumerate(result.get("reductions", [])):
        for ax in (ax_lr, ax_loss):
            ax.axvline(at, color="tab:purple", ls="--", lw=0.8, label="plateau reduction" if k == 0 else None)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title(title, fontsize=10)
    ax_lr.legend(fontsize=7, ncol=3, title="param groups by depth (layer decay 0.8)", title_fontsize=7)
    ax_lr.grid(alpha=0.3)
    window = 25
    smooth = [statistics.fmean(losses[max(0, i - window + 1):i + 1]) for i in range(len(losses))]
    ax_loss.plot(steps, losses, lw=0.5, alpha=0.35, color="tab:gray", label="batch loss")
    ax_loss.plot(steps, smooth, lw=1.5, color="tab:red", label=f"mean of last {window}")
    if result.get("val_steps"):
        ax_loss.plot(result["val_steps"], result["val_losses"], "o-", ms=2.5, lw=1, color="tab:blue",
                     label="held-out loss (observed)")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchsched demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo.png", help="where to write the PNG (default: demo.png)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (default: 2000)")
    p.add_argument("--warmup", type=int, default=200, help="warmup steps (default: 200)")
    p.add_argument("--lr", type=float, default=1e-2, help="peak LR of the top layer (default: 1e-2)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--points", type=int, default=3000, help="size of the synthetic data set (default: 3000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=50,
                   help="steps between held-out evaluations fed to the plateau rule (default: 50)")
    p.add_argument("--patience", type=int, default=3,
                   help="plateau patience, in evaluations (default: 3)")
    p.add_argument("--plateau-factor", type=float, default=0.5, help="plateau reduction factor (default: 0.5)")
    p.add_argument("--float-lrs", dest="fused", action="store_false",
                   help="non-fused AdamW (float LRs) instead of fused AdamW (tensor LRs)")
    p.add_argument("--pairs", type=int, default=400, help="step pairs per side for the overhead measurement")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default: 1; the model is too small to gain from more)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.steps <= args.warmup or args.warmup < 1:
        raise SystemExit(f"need 1 <= --warmup < --steps, got warmup={args.warmup}, steps={args.steps}")
    try:
        check.integer("--threads", args.threads, 1)
        check.integer("--eval-every", args.eval_every, 1)
        check.integer("--patience", args.patience, 0)
        check.in_interval("--plateau-factor", args.plateau_factor, 0, 1, high_open=True)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    kind = "fused AdamW, tensor LRs" if args.fused else "AdamW, float LRs"
    print(f"torchsched demo: 3 spirals, {args.points} points, MLP; wrap({kind}) with (warmup({args.warmup}) "
          f">> cosine({args.steps - args.warmup})) * plateau(factor={args.plateau_factor:g}, "
          f"patience={args.patience}) fed a held-out loss every {args.eval_every} steps")
    result = train(args)
    groups = len(result["names"])
    print(f"trained {args.steps} steps in {result['seconds']:.1f} s over {groups} param groups: "
          f"final loss {result['final_loss']:.4f}, accuracy {result['accuracy']:.1%}")
    cuts = result["reductions"]
    print(f"plateau: {len(result['val_steps'])} held-out losses observed as 0-d tensors, "
          f"{len(cuts)} reduction{'s' * (len(cuts) != 1)}" + (f" at steps {', '.join(map(str, cuts))}" if cuts else ""))

    m = measure_overhead(result["model"], lr=args.lr, warmup=args.warmup, total=args.steps, fused=args.fused,
                         pairs=args.pairs)
    ratio = m["torch_us"] / m["wrap_us"] if m["wrap_us"] > 0 else math.inf
    print(f"scheduler overhead per step ({m['groups']} groups, median of {m['pairs']} steps, same run): "
          f"torch LambdaLR {m['torch_us']:.1f} us, torchsched wrap() {m['wrap_us']:.1f} us ({ratio:.1f}x less)")
    print("  (per step: time spent outside the optimizer's own update, minus the same for a bare optimizer.step)")
    stored = " (wrap stores float32 LR tensors for fused AdamW)" if args.fused else ""
    print(f"LR sequences agree with torch LambdaLR: max relative difference {m['max_rel_lr_diff']:.1e}{stored}")
    title = (f"wrap(AdamW), (warmup >> cosine) * plateau: final loss {result['final_loss']:.3f}, "
             f"scheduling {m['wrap_us']:.1f} vs torch {m['torch_us']:.1f} us/step")
    plot(result, args.out, title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
