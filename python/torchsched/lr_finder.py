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
import warnings
from typing import Any, Iterable, Iterator

from . import _validate as check
from . import schedules as _schedules
from ._engine import Engine
from ._lr_finder_result import SUGGESTIONS, LRFinderResult

__all__ = ["find_lr", "LRFinderResult", "SUGGESTIONS", "DEFAULT_CHECK_EVERY"]

#: Iterations between two divergence checks (one host copy of an int64 each).
DEFAULT_CHECK_EVERY = 10


# ---- the ramp ----------------------------------------------------------------------------------------

def ramp(start_lr: float, end_lr: float, num_iter: int, mode: str = "exp") -> _schedules.Schedule:
    """The range test's ramp as a torchsched schedule of *factors* of ``start_lr`` (1 at iteration 0,
    ``end_lr / start_lr`` at iteration ``num_iter - 1``)."""
    if check.choice("mode", mode, ["exp", "linear"]) == 0:
        return _schedules.exponential(end_lr / start_lr, num_iter - 1)
    return _schedules.linear(num_iter - 1, init=1.0, final=end_lr / start_lr)


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

    lo = check.positive("start_lr", start_lr)
    hi = check.positive("end_lr", end_lr)
    if lo >= hi:
        raise ValueError(f"start_lr must be < end_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    n = check.integer("num_iter", num_iter, 10)
    beta = check.in_interval("smooth", smooth, 0, 1, high_open=True)
    factor = check.greater_than("diverge_factor", diverge_factor, 1)
    acc = check.integer("accumulation_steps", accumulation_steps, 1)
    k = check.integer("check_every", check_every, 1)
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
