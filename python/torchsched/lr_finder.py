"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017).

:func:`find_lr` trains for ``num_iter`` iterations while the LR rises from ``start_lr`` to ``end_lr``,
records the loss at every iteration and returns an :class:`LRFinderResult` to read the usable range from.

How it differs from the usual implementations (torch-lr-finder, Lightning ``Tuner.lr_find``, fastai
``lr_find``), which read the loss back to the host after every iteration:

* **The ramp is a torchsched schedule run by the core.** ``mode="exp"`` is
  ``schedules.exponential(end_lr / start_lr, num_iter - 1)`` (LR ``start_lr * (end_lr/start_lr) ** (i/(n-1))``
  at iteration ``i``), ``mode="linear"`` is ``schedules.linear(num_iter - 1, final=end_lr / start_lr)``; an
  :class:`~torchsched.Engine` with base LR ``start_lr`` stores every group's LR into the param groups in one
  core call per iteration. Every param group follows the same ramp.
* **The loss stays on its device.** Each iteration copies the (detached) loss into a preallocated buffer
  on the loss's device and updates the smoothed loss there too, with no host sync.
* **Divergence is checked every ``check_every`` iterations** (k, default :data:`DEFAULT_CHECK_EVERY` = 10)
  with one copy of a single int64 to the host, plus once after the first iteration (to report a loss that
  is NaN from the start). The test has diverged at the first iteration whose smoothed loss is not finite or
  exceeds ``diverge_factor`` times the lowest smoothed loss so far; a device-side flag remembers that
  iteration, so the recorded result always ends exactly there, whatever k is. The price of checking every
  k iterations is the overshoot: **at worst k - 1 iterations run past the divergence point** before the
  test notices, at LRs up to ``(end_lr/start_lr) ** ((k-1)/(num_iter-1))`` times the diverging LR in exp
  mode (``(k-1) * (end_lr-start_lr)/(num_iter-1)`` above it in linear mode); with the defaults (k = 10,
  100 iterations over 5 decades) that is a factor of about 2.8. Those iterations only cost time: they are
  not part of the result, and the state is restored afterwards anyway. ``check_every=1`` gives the peers'
  behaviour (one sync per iteration).
* **The model and optimizer are restored in place.** Every parameter, buffer (persistent or not), gradient
  and optimizer state tensor is cloned before the test and copied back into the *same* tensor objects
  afterwards; param-group entries and module train/eval flags are put back as they were. Objects that
  hold references into the model or optimizer (LR tensors owned by ``torchsched.wrap``, captured CUDA
  graphs, an attached LR scheduler) therefore stay valid. This costs one extra copy of the model and
  optimizer state in memory. The global RNG state is not restored (dropout and shuffling consume it).

Smoothing is the bias-corrected exponential moving average ``a_i = smooth * a_{i-1} + (1 - smooth) * loss_i``,
``smoothed_i = a_i / (1 - smooth ** (i + 1))`` (``smooth=0`` turns it off). Losses are assumed non-negative,
as the divergence rule compares against a multiple of the best loss.

Suggestions (all computed on the smoothed loss, over the iterations left after trimming ``skip_start``
from the start and ``skip_end`` from the end, default ``min(10, n // 10)`` and ``min(5, n // 20)``):

* ``"steepest"``: the LR where the smoothed loss falls fastest against ``log(LR)``: the most negative
  ``d loss / d log(lr)``, by central differences over ``w = max(1, round(n / 50))`` points on each side
  (``numpy.gradient`` for n < 75; +-0.1 decade for 100 iterations over 5 decades). It is searched on the
  final descent only: from the last point still within 10% of the starting level (the median smoothed loss
  of the first quarter of the iterations), measured from the lowest point, to that lowest point. Early in
  the test the smoothed loss averages few batches and wanders; a wiggle there can be steeper than the real
  descent, and a plain argmin of ``numpy.gradient`` (the peers) then suggests an LR near ``start_lr``. A
  smooth descent is steepest well inside the window (``exp(-c * lr)`` against ``log(lr)`` is steepest 63%
  of the way down). If the loss already falls during the first quarter, the window can cut the top of the
  descent: start lower. Smith's pick for a single LR.
* ``"valley"``: the longest decreasing subsequence of the smoothed loss spans the loss's main valley, which
  is robust to bumps that break a run of decreasing steps; the suggestion is the LR halfway along it (in
  iterations, so the geometric middle of its LR range for an exp ramp). fastai's default.
* ``"minimum/10"``: the LR at the lowest smoothed loss, divided by 10. At the minimum the LR is already about
  as large as training tolerates; an order of magnitude below is a conservative choice (fastai's "minimum").
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import schedules as _schedules
from ._engine import Engine
from .schedules import _number as _real  # one real-number check for the package

__all__ = ["find_lr", "LRFinderResult", "SUGGESTIONS", "DEFAULT_CHECK_EVERY"]

#: Iterations between two divergence checks (one host copy of an int64 each).
DEFAULT_CHECK_EVERY = 10

#: Names accepted by :meth:`LRFinderResult.suggestion`.
SUGGESTIONS = ("steepest", "valley", "minimum/10")


# ---- argument checks ---------------------------------------------------------------------------------



def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def ramp(start_lr: float, end_lr: float, num_iter: int, mode: str = "exp") -> _schedules.Schedule:
    """The range test's ramp as a torchsched schedule of *factors* of ``start_lr`` (1 at iteration 0,
    ``end_lr / start_lr`` at iteration ``num_iter - 1``)."""
    if mode == "exp":
        return _schedules.exponential(end_lr / start_lr, num_iter - 1)
    if mode == "linear":
        return _schedules.linear(num_iter - 1, init=1.0, final=end_lr / start_lr)
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


# ---- data --------------------------------------------------------------------------------------------

def _to_device(obj: Any, device: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(
        f"each batch must be an (inputs, targets) pair, got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
    )


class _Cycle:
    """Yields batches from ``loader`` forever, restarting it when it runs out (and warning once)."""

    def __init__(self, loader: Iterable[Any], name: str, needed: int) -> None:
        self.loader = loader
        self.name = name
        self.needed = needed
        self.warned = False
        self.it: Iterator[Any] = iter(loader)
        self.served = 0  # batches from the current pass

    def _warn(self, length: int) -> None:
        if not self.warned:
            self.warned = True
            warnings.warn(
                f"{self.name} has {length} batches, fewer than the {self.needed} the range test needs; "
                "it is cycled (batches repeat)", UserWarning, stacklevel=4)

    def next(self) -> Any:
        try:
            batch = next(self.it)
        except StopIteration:
            if self.served == 0:
                raise ValueError(f"{self.name} is empty") from None
            self._warn(self.served)
            self.it = iter(self.loader)
            self.served = 0
            try:
                batch = next(self.it)
            except StopIteration:
                raise ValueError(f"{self.name} is empty on its second pass") from None
        self.served += 1
        return batch


def _loader_len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _inputs_call(model: Any, inputs: Any) -> Any:
    if isinstance(inputs, (list, tuple)):
        return model(*inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(inputs)


# ---- state snapshot ----------------------------------------------------------------------------------

class _Snapshot:
    """Clones of everything the test changes, copied back into the same objects by :meth:`restore`."""

    def __init__(self, model: Any, optimizer: Any) -> None:
        import torch

        tensors: dict[int, Any] = {}
        for t in list(model.parameters()) + list(model.buffers()):
            tensors[id(t)] = t
        params = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                tensors[id(p)] = p
                params.append(p)
        for p in model.parameters():
            params.append(p)
        with torch.no_grad():
            self.tensors = [(t, t.detach().clone()) for t in tensors.values()]
        seen: set[int] = set()
        self.grads = []
        for p in params:
            if id(p) in seen:
                continue
            seen.add(id(p))
            g = p.grad
            self.grads.append((p, g, None if g is None else g.detach().clone()))
        self.modes = [(m, m.training) for m in model.modules()]
        self.groups = [(g, dict(g), {k: v.detach().clone() for k, v in g.items() if isinstance(v, torch.Tensor)})
                       for g in optimizer.param_groups]
        self.optimizer = optimizer
        self.state = {}
        for p, st in optimizer.state.items():
            self.state[p] = (dict(st), {k: (v.detach().clone() if isinstance(v, torch.Tensor) else _deepcopy(v))
                                         for k, v in st.items()})

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for t, saved in self.tensors:
                t.copy_(saved)
            for p, g, saved in self.grads:
                if g is None:
                    p.grad = None
                else:
                    g.copy_(saved)
                    p.grad = g
            for group, entries, tensor_values in self.groups:
                group.clear()
                group.update(entries)
                for k, v in tensor_values.items():
                    entries[k].copy_(v)
            state = self.optimizer.state
            for p in list(state.keys()):
                if p not in self.state:
                    del state[p]
            for p, (objects, values) in self.state.items():
                st = state[p] if p in state else {}
                st.clear()
                for k, obj in objects.items():
                    if isinstance(obj, torch.Tensor):
                        obj.copy_(values[k])
                        st[k] = obj
                    else:
                        st[k] = _deepcopy(values[k])
                state[p] = st
        for m, mode in self.modes:
            m.training = mode


def _deepcopy(v: Any) -> Any:
    import copy

    return copy.deepcopy(v)


# ---- the result --------------------------------------------------------------------------------------

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
        s = min(10, n // 10) if skip_start is None else _int("skip_start", skip_start, 0)
        e = min(5, n // 20) if skip_end is None else _int("skip_end", skip_end, 0)
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
        if method not in SUGGESTIONS:
            raise ValueError(f"method must be one of {list(SUGGESTIONS)}, got {method!r}")
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

        if suggestion is not None and suggestion != "all" and suggestion not in SUGGESTIONS:
            raise ValueError(f"suggestion must be one of {list(SUGGESTIONS)}, 'all' or None, got {suggestion!r}")
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
        if kind not in ("one_cycle", "triangular"):
            raise ValueError(f"kind must be 'one_cycle' or 'triangular', got {kind!r}")
        low, high = self.lr_range()
        peak = high if max_lr is None else _real("max_lr", max_lr)
        if peak <= 0:
            raise ValueError(f"max_lr must be > 0, got {max_lr!r}")
        if kind == "one_cycle":
            if total_steps is None:
                raise ValueError("total_steps is required for kind='one_cycle'")
            total = _int("total_steps", total_steps, 2)
            opts: dict[str, Any] = dict(div_factor=10.0, pct_start=0.45, anneal="linear", three_phase=True,
                                        final_div_factor=1e4)
            opts.update(kwargs)
            return _schedules.one_cycle(total, max=peak, **opts)
        base = (low if low < peak else peak / 4) if base_lr is None else _real("base_lr", base_lr)
        if not 0 <= base <= peak:
            raise ValueError(f"base_lr must be in [0, max_lr={peak:g}], got {base!r}")
        if step_size is None:
            if total_steps is None:
                raise ValueError("kind='triangular' needs total_steps or step_size")
            cyc = _int("cycles", cycles, 1)
            half = _int("total_steps", total_steps, 2) / (2 * cyc)
        else:
            half = _int("step_size", step_size, 1)
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


# ---- the test ----------------------------------------------------------------------------------------

def find_lr(model: Any, optimizer: Any, criterion: Any, train_loader: Iterable[Any], *, start_lr: float,
            end_lr: float, num_iter: int, mode: str = "exp", smooth: float = 0.98, diverge_factor: float = 4.0,
            val_loader: Iterable[Any] | None = None, accumulation_steps: int = 1, amp: bool = False,
            check_every: int = DEFAULT_CHECK_EVERY, progress: bool = True) -> LRFinderResult:
    """Runs the LR range test and returns an :class:`LRFinderResult`; the model and optimizer are restored.

    ``train_loader`` yields ``(inputs, targets)`` batches (``inputs`` may be a tuple or dict of model
    arguments); tensors are moved to the device of the model's first parameter. Each iteration uses
    ``accumulation_steps`` batches (the loss is their mean), then steps the optimizer. With ``val_loader``
    the recorded loss is the mean validation loss after the update (slower, less noisy). ``amp`` runs the
    forward pass under ``torch.autocast`` (float16 with a GradScaler on CUDA, bfloat16 elsewhere; the
    GradScaler reads its overflow flag on the host each step). A loader with fewer batches than the test
    needs is cycled, with a warning. See the module docstring for the ramp, smoothing, divergence check
    (every ``check_every`` iterations) and suggestions. Given a :func:`torchsched.wrap` optimizer, the test
    drives the optimizer it wraps, so the wrapper's schedule does not advance.
    """
    import torch

    lo = _real("start_lr", start_lr)
    hi = _real("end_lr", end_lr)
    if lo <= 0 or hi <= 0:
        raise ValueError(f"start_lr and end_lr must be > 0, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if lo >= hi:
        raise ValueError(f"start_lr must be < end_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    n = _int("num_iter", num_iter, 10)
    beta = _real("smooth", smooth)
    if not 0 <= beta < 1:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    factor = _real("diverge_factor", diverge_factor)
    if factor <= 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    acc = _int("accumulation_steps", accumulation_steps, 1)
    k = _int("check_every", check_every, 1)
    sched = ramp(lo, hi, n, mode)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    try:
        from .optim import ScheduledOptimizer
    except ImportError:  # pragma: no cover - optim is part of the package
        ScheduledOptimizer = None  # type: ignore[assignment,misc]
    if ScheduledOptimizer is not None and isinstance(optimizer, ScheduledOptimizer):
        # The range test drives the wrapped optimizer: the wrapper's schedule must not advance.
        optimizer = optimizer.optimizer
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if loader is None:
            continue
        length = _loader_len(loader)
        if length == 0:
            raise ValueError(f"{name} is empty")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    length = _loader_len(train_loader)
    batches = _Cycle(train_loader, "train_loader", n * acc)
    if length is not None and length < n * acc:
        batches._warn(length)

    lrs = lo * sched.values(range(n))
    engine = Engine(sched, [lo] * len(optimizer.param_groups))
    use_scaler = amp and device.type == "cuda"
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def forward_loss(batch: Any) -> Any:
        inputs, targets = _split(batch)
        inputs, targets = _to_device(inputs, device), _to_device(targets, device)
        if amp:
            with torch.autocast(device_type=device.type, dtype=amp_dtype):
                out = _inputs_call(model, inputs)
                loss = criterion(out, targets)
        else:
            loss = criterion(_inputs_call(model, inputs), targets)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("criterion must return a single-element loss tensor, got "
                             + (f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else repr(loss)))
        return loss.reshape(())

    def validate() -> Any:
        model.eval()
        total = None
        count = 0
        with torch.no_grad():
            for batch in val_loader:  # type: ignore[union-attr]
                loss = forward_loss(batch).detach().float()
                total = loss if total is None else total + loss
                count += 1
        model.train()
        if total is None:
            raise ValueError("val_loader is empty")
        return total / count

    snapshot = _Snapshot(model, optimizer)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
            bar = tqdm(total=n, desc="find_lr", unit="it", leave=False)
        except ImportError:  # pragma: no cover - tqdm is optional
            bar = None
    raw: Any = None  # the device buffers, allocated at the first loss
    smoothed: Any = None
    ema: Any = None
    best: Any = None
    first_bad: Any = None
    core: Any = engine._core  # type: ignore[has-type]
    stop_at: int | None = None
    run = 0
    try:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        core.write_dicts(optimizer.param_groups, "lr")  # f(0) = start_lr in every group
        for i in range(n):
            total: Any = None
            for _ in range(acc):
                loss = forward_loss(batches.next())
                scaled = loss / acc if acc > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                d = loss.detach().float()
                total = d if total is None else total + d
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = total / acc if acc > 1 else total  # type: ignore[operator]
            if val_loader is not None:
                value = validate()
            if raw is None:  # buffers on the loss's device, allocated once
                raw = torch.empty(n, dtype=torch.float32, device=value.device)
                smoothed = torch.empty_like(raw)
                ema = torch.zeros((), dtype=torch.float32, device=value.device)
                best = torch.full((), math.inf, dtype=torch.float32, device=value.device)
                first_bad = torch.full((), -1, dtype=torch.int64, device=value.device)
            raw[i] = value
            ema.mul_(beta).add_(value, alpha=1.0 - beta)
            s = smoothed[i]
            torch.div(ema, 1.0 - beta ** (i + 1), out=s)
            bad = (s > factor * best) | ~torch.isfinite(s)
            torch.minimum(best, s, out=best)
            first_bad.masked_fill_(bad & (first_bad < 0), i)
            run = i + 1
            if i + 1 < n:
                core.advance_dicts(optimizer.param_groups, "lr")
            if bar is not None:
                bar.update(1)
            if i == 0 or (i + 1) % k == 0 or i + 1 == n:
                if bar is not None:  # the one host copy per check: the flag (and the loss for the bar)
                    fb_f, shown = torch.stack((first_bad.to(torch.float32), s)).tolist()
                    fb = int(fb_f)
                    bar.set_postfix(loss=f"{shown:.4g}", refresh=False)
                else:
                    fb = int(first_bad.item())
                if i == 0 and fb == 0:
                    raise RuntimeError(
                        f"the loss is {float(raw[0])} at the first iteration (lr={lrs[0]:.3g}), before the LR "
                        "has grown: check the model, the criterion and the data")
                if fb >= 0:
                    stop_at = fb
                    break
    finally:
        if bar is not None:
            bar.close()
        snapshot.restore()
    count = run if stop_at is None else stop_at + 1
    return LRFinderResult(lrs[:count], raw[:count].double().cpu().numpy(),  # type: ignore[index]
                          smoothed[:count].double().cpu().numpy(), start_lr=lo, end_lr=hi,  # type: ignore[index]
                          num_iter=n, mode=mode, smooth=beta, diverged_at=stop_at, iterations_run=run,
                          check_every=k)
