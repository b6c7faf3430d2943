"""What the LR range test recorded, and what to read from it: suggestions, the usable range, the plot and
schedules built from the range. :func:`torchsched.find_lr` makes an :class:`LRFinderResult`; the module
docstring of :mod:`torchsched.lr_finder` defines each suggestion."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _validate as check
from . import schedules as _schedules

__all__ = ["LRFinderResult", "SUGGESTIONS"]

#: Names accepted by :meth:`LRFinderResult.suggestion`.
SUGGESTIONS = ("steepest", "valley", "minimum/10")


class LRFinderResult:
    """What :func:`find_lr` recorded: one entry per iteration up to (and including) the divergence point.

    Attributes: ``lrs`` (the LR each iteration trained with), ``losses`` (raw loss of each iteration: the
    training loss, or the validation loss after the update when a ``val_loader`` was given),
    ``smoothed_losses``, ``diverged`` and ``diverged_at`` (index of the diverging iteration, or None),
    ``iterations_run`` (including the overshoot past divergence), ``start_lr``, ``end_lr``, ``num_iter``,
    ``mode``, ``smooth``. ``history`` is ``{"lr": [...], "loss": [...]}`` with the smoothed losses.
    """

    def __init__(self, lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, *, start_lr: float,
                 end_lr: float, num_iter: int, mode: str, smooth: float, diverged_at: int | None,
                 iterations_run: int, check_every: int) -> None:
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.losses = np.asarray(losses, dtype=np.float64)
        self.smoothed_losses = np.asarray(smoothed, dtype=np.float64)
        self.start_lr, self.end_lr, self.num_iter = start_lr, end_lr, num_iter
        self.mode, self.smooth = mode, smooth
        self.diverged_at = diverged_at
        self.iterations_run = iterations_run
        self.check_every = check_every

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def history(self) -> dict[str, list[float]]:
        return {"lr": self.lrs.tolist(), "loss": self.smoothed_losses.tolist()}

    def __len__(self) -> int:
        return int(self.lrs.size)

    # ---- suggestions
    def _window(self, skip_start: int | None, skip_end: int | None) -> np.ndarray:
        n = len(self)
        s = min(10, n // 10) if skip_start is None else check.integer("skip_start", skip_start)
        e = min(5, n // 20) if skip_end is None else check.integer("skip_end", skip_end)
        idx = np.arange(s, n - e)
        idx = idx[np.isfinite(self.smoothed_losses[idx])] if idx.size else idx
        if idx.size < 3:
            raise ValueError(
                f"too few points to suggest an LR: {n} recorded, {idx.size} finite after skipping "
                f"{s} at the start and {e} at the end (diverged at iteration {self.diverged_at}); "
                "lower start_lr or raise num_iter")
        return idx

    def suggestion(self, method: str = "steepest", *, skip_start: int | None = None,
                   skip_end: int | None = None) -> float:
        """The suggested LR by ``method``: ``"steepest"``, ``"valley"`` or ``"minimum/10"`` (see the module
        docstring for each definition)."""
        return self.lrs[self._suggestion_index(method, skip_start, skip_end)] / (10.0 if method == "minimum/10" else 1.0)

    def _suggestion_index(self, method: str, skip_start: int | None = None, skip_end: int | None = None) -> int:
        check.choice("method", method, SUGGESTIONS)
        idx = self._window(skip_start, skip_end)
        y = self.smoothed_losses[idx]
        if method == "steepest":
            slope = _slope(y, np.log(self.lrs[idx]), max(1, round(0.02 * len(self))))
            m = int(np.argmin(y))
            above = np.nonzero(y[: m + 1] >= y[m] + 0.9 * (self._start_level() - y[m]))[0]
            first = int(above[-1]) if above.size else 0  # the descent starts when the loss leaves its start level
            return int(idx[first + int(np.argmin(slope[first: m + 1]))])
        if method == "minimum/10":
            return int(idx[int(np.argmin(y))])
        first, last = _longest_decreasing(y)
        return int(idx[(first + last) // 2])

    def _start_level(self) -> float:
        """The loss before the LR does anything: the median smoothed loss of the first quarter of the
        iterations (at least 5), robust to the noise of single batches."""
        head = self.smoothed_losses[: max(5, len(self) // 4)]
        head = head[np.isfinite(head)]
        return float(np.median(head)) if head.size else math.inf

    @property
    def suggestions(self) -> dict[str, float]:
        """All suggestions by name."""
        return {m: self.suggestion(m) for m in SUGGESTIONS}

    def lr_range(self) -> tuple[float, float]:
        """``(low, high)``: ``high`` is the LR at the lowest smoothed loss (where the loss stops falling, the
        CLR paper's ``max_lr``), ``low`` is where the smoothed loss has fallen 10% of the way from its start
        to that minimum (where it "starts to decrease", the paper's ``base_lr``)."""
        idx = self._window(None, None)
        y = self.smoothed_losses[idx]
        m = int(np.argmin(y))
        drop = y[0] - y[m]
        below = np.nonzero(y[: m + 1] <= y[0] - 0.1 * drop)[0]
        lo = int(below[0]) if below.size and drop > 0 else 0
        return float(self.lrs[idx[lo]]), float(self.lrs[idx[m]])

    # ---- plot
    def plot(self, path: Any = None, suggestion: str | None = "steepest", *, ax: Any = None,
             show_raw: bool = True, title: str | None = None, dpi: int = 100) -> Any:
        """Loss against LR (log scale) with ``suggestion`` marked (``"all"`` marks every suggestion,
        ``None`` none). Returns the matplotlib Figure; saves a PNG when ``path`` is given."""
        from matplotlib.figure import Figure

        check.choice("suggestion", suggestion, [*SUGGESTIONS, "all", None])
        if ax is None:
            fig = Figure(figsize=(6.4, 4.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        finite = np.isfinite(self.smoothed_losses)
        if show_raw:
            ax.plot(self.lrs, self.losses, color="0.75", lw=0.8, label="loss")
        ax.plot(self.lrs[finite], self.smoothed_losses[finite], color="C0", lw=1.8,
                label=f"smoothed (beta={self.smooth:g})" if self.smooth else "loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(title or f"LR range test ({self.mode}, {len(self)} iterations"
                     + (", diverged)" if self.diverged else ")"))
        ax.grid(True, which="both", alpha=0.25)
        if finite.sum() >= 2:
            sm = self.smoothed_losses[finite]
            m = int(np.argmin(sm))
            lo, hi = float(sm[m]), float(np.max(sm[: m + 1]))
            if show_raw:  # the raw loss runs ahead of its moving average on the way down
                head = self.losses[finite][: m + 1]
                head = head[np.isfinite(head)]
                lo = min(lo, float(head.min())) if head.size else lo
            pad = 0.1 * (hi - lo) if hi > lo else 0.1 * abs(hi) + 1e-12
            ax.set_ylim(lo - pad, hi + 3 * pad)
        methods = list(SUGGESTIONS) if suggestion == "all" else ([] if suggestion is None else [suggestion])
        markers = {"steepest": ("C3", "o"), "valley": ("C2", "s"), "minimum/10": ("C1", "^")}
        for method in methods:
            try:
                i = self._suggestion_index(method)
            except ValueError:
                continue
            lr = self.suggestion(method)
            color, marker = markers[method]
            y = float(np.interp(np.log(lr), np.log(self.lrs[finite]), self.smoothed_losses[finite]))
            ax.axvline(lr, color=color, ls="--", lw=1)
            ax.plot([lr], [y if method == "minimum/10" else self.smoothed_losses[i]], marker=marker, color=color,
                    ms=8, ls="none", label=f"{method}: {lr:.3g}")
        ax.legend(loc="best", fontsize="small")
        if path is not None:
            fig.savefig(path, dpi=dpi, format="png")
        return fig

    # ---- schedules
    def to_schedule(self, kind: str = "one_cycle", total_steps: int | None = None, *, max_lr: float | None = None,
                    base_lr: float | None = None, step_size: int | None = None, cycles: int = 1,
                    **kwargs: Any) -> _schedules.Schedule:
        """A torchsched schedule of *absolute* LRs (use it with base LR 1) built from the found range.

        * ``kind="triangular"`` (the CLR paper): ``schedules.cyclic(base_lr, max_lr, step_size)``. ``max_lr``
          defaults to where the loss stops falling and ``base_lr`` to where it starts to fall
          (:meth:`lr_range`; the paper's alternative rule of thumb, ``base_lr = max_lr / 3`` or ``/ 4``, is
          ``base_lr=max_lr / 4``). ``step_size`` (half a cycle; the paper recommends 2-10 epochs of
          iterations) defaults to ``total_steps / (2 * cycles)`` so training ends at the end of a cycle.
          ``mode="triangular2"`` and other :func:`~torchsched.schedules.cyclic` arguments pass through.
        * ``kind="one_cycle"`` (Smith 2018, super-convergence): one triangle from ``max_lr / 10`` up to
          ``max_lr`` and back over 90% of ``total_steps`` (45% up, 45% down, linear), then the remaining
          10% annihilate the LR to ``max_lr / 1e5``. That is :func:`~torchsched.schedules.one_cycle` with
          ``div_factor=10, pct_start=0.45, anneal="linear", three_phase=True, final_div_factor=1e4``;
          any of them can be overridden. ``max_lr`` defaults to the top of :meth:`lr_range`.
        """
        check.choice("kind", kind, ["one_cycle", "triangular"])
        low, high = self.lr_range()
        peak = high if max_lr is None else check.positive("max_lr", max_lr)
        if kind == "one_cycle":
            if total_steps is None:
                raise ValueError("total_steps is required for kind='one_cycle'")
            total = check.integer("total_steps", total_steps, 2)
            opts: dict[str, Any] = dict(div_factor=10.0, pct_start=0.45, anneal="linear", three_phase=True,
                                        final_div_factor=1e4)
            opts.update(kwargs)
            return _schedules.one_cycle(total, max=peak, **opts)
        base = (low if low < peak else peak / 4) if base_lr is None else check.in_interval("base_lr", base_lr, 0, peak)
        if step_size is None:
            if total_steps is None:
                raise ValueError("kind='triangular' needs total_steps or step_size")
            cyc = check.integer("cycles", cycles, 1)
            half = check.integer("total_steps", total_steps, 2) / (2 * cyc)
        else:
            half = check.integer("step_size", step_size, 1)
        tri: dict[str, Any] = dict(mode="triangular")
        tri.update(kwargs)
        return _schedules.cyclic(base, peak, half, **tri)

    def __repr__(self) -> str:
        try:
            s = f", steepest={self.suggestion('steepest'):.3g}"
        except ValueError:
            s = ""
        div = f", diverged at {self.diverged_at}" if self.diverged else ""
        return f"LRFinderResult({len(self)} points, lr {self.lrs[0]:.3g}..{self.lrs[-1]:.3g}{div}{s})"


def _slope(y: np.ndarray, x: np.ndarray, w: int) -> np.ndarray:
    """dy/dx by central differences over ``w`` points on each side (one-sided at the ends); ``w = 1`` is
    ``numpy.gradient`` in the interior."""
    n = y.size
    i = np.arange(n)
    a, b = np.maximum(i - w, 0), np.minimum(i + w, n - 1)
    return (y[b] - y[a]) / (x[b] - x[a])


def _longest_decreasing(y: np.ndarray) -> tuple[int, int]:
    """(first, last) positions of a longest strictly decreasing subsequence of ``y`` (O(n log n))."""
    import bisect

    # Patience sorting on -y (a decreasing run of y is an increasing run of -y).
    tails: list[float] = []      # smallest tail value (-y) of an increasing subsequence of each length
    tail_pos: list[int] = []     # its position
    parent = [-1] * len(y)
    for i, v in enumerate(-np.asarray(y, dtype=np.float64)):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_pos.append(i)
        else:
            tails[k] = v
            tail_pos[k] = i
        parent[i] = tail_pos[k - 1] if k > 0 else -1
    last = tail_pos[-1]
    first = last
    while parent[first] != -1:
        first = parent[first]
    return first, last
