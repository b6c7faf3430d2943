"""Every single-argument check of the package, each with its one message.

A check takes the argument's name first and its value second, returns the value in the form the caller
needs (a float, an int, a list, an array) and otherwise raises with a message that names the argument and
the value: ``"{name} must be <rule>, got {value!r}"``. A value of the wrong kind raises ``TypeError``, a value
of the right kind that breaks the rule ``ValueError``. So the same bad argument reads the same wherever it
is passed: a schedules builder, ``wrap()``, the spec parser and the command line, the engines,
``param_groups`` and ``find_lr``.

Rules that tie two arguments of one function together (``start_lr < end_lr``, one value per boundary plus
one) stay in that function; messages about one concept (a param-group index, a buffer for the core) stay
with the module that owns the concept.

This module imports nothing from the package, so every layer may use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Protocol, Sequence, TypeVar

import numpy as np
import torch

__all__ = [
    "Emitter", "NotAnIntegerError", "real", "non_negative", "positive", "greater_than", "in_interval", "integer",
    "step_count", "choice", "sorted_steps", "non_negative_list", "step_array", "step_range", "scalar",
    "is_schedule", "schedule",
]

#: The last step an int64 step counter holds.
MAX_STEP = 2**63 - 1

_T = TypeVar("_T")


class NotAnIntegerError(TypeError, ValueError):
    """A value that is not an integer where a count is expected. A ``TypeError`` by Python's convention and a
    ``ValueError`` as torch's schedulers raise for a bad count, so code written against either catches it."""


class Emitter(Protocol):
    """What :func:`schedule` accepts: an object that appends its nodes to a program builder, as every
    torchsched schedule does. The compiler and the engines need no more of a schedule, so they need not
    import :mod:`torchsched.schedules`, which sits above them."""

    def _emit(self, builder: Any) -> None: ...


# ---- numbers -------------------------------------------------------------------------------------

def real(name: str, value: Any) -> float:
    """A finite real number (not a bool), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def non_negative(name: str, value: Any) -> float:
    """A finite real number >= 0."""
    v = real(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def greater_than(name: str, value: Any, bound: float) -> float:
    """A finite real number > ``bound``."""
    v = real(name, value)
    if not v > bound:
        raise ValueError(f"{name} must be > {bound:g}, got {value!r}")
    return v


def positive(name: str, value: Any) -> float:
    """A finite real number > 0."""
    return greater_than(name, value, 0)


def in_interval(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    """A finite real number in ``[low, high]``; ``low_open``/``high_open`` leave out that end."""
    v = real(name, value)
    if (v <= low if low_open else v < low) or (v >= high if high_open else v > high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def integer(name: str, value: Any, minimum: int = 0) -> int:
    """An integer (not a bool) >= ``minimum``, as an int; a non-integer raises :class:`NotAnIntegerError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NotAnIntegerError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def step_count(name: str, value: Any) -> int:
    """A step of a schedule: an integer in ``[0, 2**63)``, what the core's int64 counter holds."""
    v = integer(name, value, 0)
    if v > MAX_STEP:
        raise ValueError(f"{name} must be < 2**63, got {value!r}")
    return v


def scalar(name: str, value: Any) -> Any:
    """``value`` itself, or the Python number a one-element tensor holds (a param group's ``'lr'`` may be a
    tensor); check the number with the other checks."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number or a 1-element tensor, got a tensor of shape "
                             f"{tuple(value.shape)}")
        return value.detach().reshape(()).item()
    return value


# ---- choices and sequences -----------------------------------------------------------------------

def choice(name: str, value: Any, options: Sequence[Any]) -> int:
    """The position of ``value`` in ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return list(options).index(value)


def sorted_steps(name: str, values: Iterable[Any], *, strict: bool = False) -> list[float]:
    """Steps >= 0 in ascending order (``strict``: and distinct), as floats."""
    given = list(values)
    out = [non_negative(f"{name}[{i}]", v) for i, v in enumerate(given)]
    for i in range(1, len(out)):
        if out[i] < out[i - 1] or (strict and out[i] == out[i - 1]):
            raise ValueError(f"{name} must be sorted{' and distinct' if strict else ''}, got {given!r}")
    return out


def non_negative_list(name: str, values: Iterable[Any], count: int | None = None) -> list[float]:
    """Finite reals >= 0, one per group when ``count`` is given, as floats."""
    out = [non_negative(f"{name}[{i}]", v) for i, v in enumerate(values)]
    if count is not None and len(out) != count:
        raise ValueError(f"{name} has {len(out)} entries for {count} groups")
    return out


def step_range(name: str, steps: range) -> range:
    """A range of steps with a positive stride, all in ``[0, 2**63)``."""
    if steps and steps.start < 0:
        raise ValueError(f"{name} must be >= 0, got {steps.start}")
    if steps and steps[-1] > MAX_STEP:
        raise ValueError(f"{name} must be < 2**63, got {steps[-1]}")
    return steps


def step_array(name: str, steps: Any) -> np.ndarray:
    """Steps >= 0 (a range, a sequence or an array of integers, or of whole floats) as a flat int64 array."""
    if isinstance(steps, range):
        arr = np.arange(steps.start, steps.stop, steps.step, dtype=np.int64)
    else:
        raw = np.asarray(steps)
        if raw.dtype.kind not in "iu" and raw.size:
            if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.floor(raw)):
                raw = raw.astype(np.int64)
            else:
                raise TypeError(f"{name} must be integers, got dtype {raw.dtype}")
        arr = np.ascontiguousarray(raw, dtype=np.int64).reshape(-1)
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{name} must be >= 0, got {int(arr.min())}")
    return arr


# ---- schedules -----------------------------------------------------------------------------------

def is_schedule(value: Any) -> bool:
    """True for a torchsched schedule: anything the compiler can emit (see :class:`Emitter`)."""
    return callable(getattr(value, "_emit", None))


def schedule(name: str, value: _T) -> _T:
    """A torchsched schedule (see :class:`Emitter`)."""
    if not is_schedule(value):
        raise TypeError(f"{name} must be a torchsched schedule (torchsched.schedules), got {value!r}")
    return value


# ---- the drop-in classes
# Their messages start with the class (or "Class.method") that was given the value: "StepLR: gamma must be ...".

class MissingStateKeyError(KeyError, ValueError):
    """A state dict without an entry the scheduler needs: a ``KeyError`` as torch's own loads raise for a missing
    entry, and a ``ValueError`` as for any other corrupted state dict."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def scheduler_number(owner: str, name: str, value: Any) -> Any:
    """A number torch's scheduler arithmetic takes (a real number, a bool included, or a tensor), finite. Returned
    unchanged: a tensor keeps torch's types."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{owner}: {name} must be a real number, got a {value.dtype} tensor")
        if not bool(torch.isfinite(value.detach()).all()):
            raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
        return value
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r} ({type(value).__name__})")
    try:
        finite = math.isfinite(value)
    except OverflowError:
        raise OverflowError(f"{owner}: {name} is too large for a float64, got {value!r}") from None
    if not finite:
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return value


def scheduler_numbers(owner: str, name: str, values: Any) -> list[Any]:
    """A list (or tuple) of :func:`scheduler_number` values, one per param group."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{owner}: {name} must be a list, got {values!r} ({type(values).__name__})")
    return [scheduler_number(owner, f"{name}[{i}]", v) for i, v in enumerate(values)]


def scheduler_count(owner: str, name: str, value: Any) -> int:
    """A counter of a scheduler's state (``_step_count``): an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return int(value)


def scheduler_lambda(owner: str, name: str, value: Any) -> Any:
    """A function of the epoch (a Python callable or a torchsched schedule)."""
    if not callable(value):
        raise TypeError(f"{owner}: {name} must be a function of the epoch or a torchsched schedule, got "
                        f"{value!r} ({type(value).__name__})")
    return value


def state_mapping(owner: str, state: Any, required: Iterable[str]) -> Any:
    """A state dict to load: a mapping holding every ``required`` entry."""
    if not isinstance(state, dict):
        raise TypeError(f"{owner}: state_dict must be a dict, got {type(state).__name__}")
    missing = [key for key in required if key not in state]
    if missing:
        raise MissingStateKeyError(f"{owner}: state_dict has no {', '.join(map(repr, missing))} entry")
    return state


def scheduler_epoch(owner: str, value: Any) -> Any:
    """The deprecated ``step(epoch)`` argument: a finite real number (or tensor). An infinity raises
    OverflowError, as ``math.floor`` does (and torch's ``CosineAnnealingWarmRestarts``); NaN ValueError."""
    if isinstance(value, float) and math.isinf(value):
        raise OverflowError(f"{owner}: epoch must be finite, got {value!r}")
    return scheduler_number(owner, "epoch", value)
