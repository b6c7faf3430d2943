"""Every single-argument check of the package, each with its one message.

A check takes the argument's name first and its value second, returns the value in the form the caller
needs (a float, an int, a list, an array) and otherwise raises with a message that names the argument and
the value: ``"{name} must be <rule>, got {value!r}"`` (shortened by :func:`shown`: a message never fails on,
or drowns in, the value it reports). A value of the wrong kind raises ``TypeError``, a value
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
    "step_count", "counter_step", "choice", "items", "sorted_steps", "non_negative_list", "real_list", "step_array", "step_range",
    "scalar", "is_schedule", "schedule", "shown", "MAX_STEP", "STEP_LIMIT",
]

#: The last step a schedule can be evaluated at: what an int64 holds.
MAX_STEP = 2**63 - 1

#: The step policy. A step counter (``wrap()``'s, an engine's) holds steps in ``[0, STEP_LIMIT]``: a counter
#: set past it is refused, and ``wrap()``'s ``step()`` at it raises ``OverflowError`` before anything changes.
#: No counter can therefore wrap around int64 (from 2**62, reaching 2**63 takes 2**62 more steps), so the
#: per-step hot paths need no check of their own. Schedules themselves evaluate at any step up to MAX_STEP.
STEP_LIMIT = 2**62

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

def shown(value: Any, limit: int = 200) -> str:
    """``repr(value)`` for a message, shortened: an integer too long to read (or to print: Python refuses
    to turn one of more than 4300 digits into text) is shown by its size, any other long repr is cut."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10**20:
        sign = "-" if value < 0 else ""
        return f"{sign}2**{abs(int(value)).bit_length() - 1} or more"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail on the value it reports
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def real(name: str, value: Any) -> float:
    """A finite real number (not a bool), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {shown(value)} ({type(value).__name__})")
    try:
        v = float(value)
    except OverflowError:  # an integer beyond float's range
        v = math.inf
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {shown(value)}")
    if isinstance(value, numbers.Integral) and int(value) != v:
        # the core holds numbers as float64: past 2**53 it would silently compute with a neighbour instead
        raise ValueError(f"{name} must be an integer that float64 holds exactly (every one up to 2**53, only some "
                         f"above), got {shown(value)}; the nearest it holds is {int(v)}")
    return v


def non_negative(name: str, value: Any) -> float:
    """A finite real number >= 0."""
    v = real(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {shown(value)}")
    return v


def greater_than(name: str, value: Any, bound: float) -> float:
    """A finite real number > ``bound``."""
    v = real(name, value)
    if not v > bound:
        raise ValueError(f"{name} must be > {bound:g}, got {shown(value)}")
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
        raise ValueError(f"{name} must be in {interval}, got {shown(value)}")
    return v


def integer(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (not a bool) >= ``minimum`` (and <= ``maximum``), as an int; a non-integer raises
    :class:`NotAnIntegerError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NotAnIntegerError(f"{name} must be an integer >= {minimum}, got {shown(value)}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {shown(value)}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be an integer <= {_power(maximum)}, got {shown(value)}")
    return v


def _power(bound: int) -> str:
    """2**62 rather than 4611686018427387904 in a message."""
    for k in (62, 63):
        if bound in (2**k, 2**k - 1):
            return f"2**{k}" if bound == 2**k else f"2**{k} - 1"
    return str(bound)


def step_count(name: str, value: Any) -> int:
    """A step to evaluate a schedule at: an integer in ``[0, 2**63)``, what the core's int64 holds."""
    v = integer(name, value, 0)
    if v > MAX_STEP:
        raise ValueError(f"{name} must be < 2**63, got {shown(value)}")
    return v


def counter_step(name: str, value: Any) -> int:
    """The value of a step counter: an integer in ``[0, STEP_LIMIT]`` (the step policy, see STEP_LIMIT)."""
    v = integer(name, value, 0)
    if v > STEP_LIMIT:
        raise ValueError(f"{name} must be <= 2**62 (the step limit), got {shown(value)}")
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
    # compared by type and value: an array or a tensor has no truth value to test "in" with
    for i, option in enumerate(options):
        if type(option) is type(value) and option == value:
            return i
    raise ValueError(f"{name} must be one of {list(options)}, got {shown(value)}")


def items(name: str, values: Any) -> list[Any]:
    """The entries of a list-like argument (a list, a tuple, an array, any iterable but a string), as a list."""
    try:
        if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
            raise TypeError
        return list(values)
    except TypeError:  # not iterable, or refuses to be iterated (a 0-d tensor or array)
        raise TypeError(f"{name} must be a list, got {shown(values)} ({type(values).__name__})") from None


def sorted_steps(name: str, values: Iterable[Any], *, strict: bool = False) -> list[float]:
    """Steps >= 0 in ascending order (``strict``: and distinct), as floats."""
    given = items(name, values)
    out = [non_negative(f"{name}[{i}]", v) for i, v in enumerate(given)]
    for i in range(1, len(out)):
        if out[i] < out[i - 1] or (strict and out[i] == out[i - 1]):
            raise ValueError(f"{name} must be sorted{' and distinct' if strict else ''}, got {shown(given)}")
    return out


def non_negative_list(name: str, values: Iterable[Any], count: int | None = None) -> list[float]:
    """Finite reals >= 0, one per group when ``count`` is given, as floats."""
    return _per_group(name, [non_negative(f"{name}[{i}]", v) for i, v in enumerate(items(name, values))], count)


def real_list(name: str, values: Iterable[Any], count: int | None = None) -> list[float]:
    """Finite reals, one per group when ``count`` is given, as floats."""
    return _per_group(name, [real(f"{name}[{i}]", v) for i, v in enumerate(items(name, values))], count)


def _per_group(name: str, out: list[float], count: int | None) -> list[float]:
    if count is not None and len(out) != count:
        raise ValueError(f"{name} has {len(out)} entries for {count} groups")
    return out


def step_range(name: str, steps: range) -> range:
    """A range of steps, all in ``[0, 2**63)``."""
    if steps:
        low, high = min(steps[0], steps[-1]), max(steps[0], steps[-1])
        if low < 0:
            raise ValueError(f"{name} must be >= 0, got {shown(low)}")
        if high > MAX_STEP:
            raise ValueError(f"{name} must be < 2**63, got {shown(high)}")
    return steps


def step_array(name: str, steps: Any) -> np.ndarray:
    """Steps in ``[0, 2**63)`` (a range, a sequence or an array of integers, or of whole floats) as a flat
    int64 array. Out-of-range values are refused before any cast, so none wraps around or warns."""
    if isinstance(steps, range):
        return np.arange(steps.start, steps.stop, steps.step, dtype=np.int64) if step_range(name, steps) else \
            np.zeros(0, dtype=np.int64)
    if isinstance(steps, (str, bytes)) or (isinstance(steps, np.ndarray) and steps.dtype.kind in "SUb"):
        raise TypeError(f"{name} must be integers, got {shown(steps)}")
    try:
        raw = np.asarray(steps)
    except (ValueError, TypeError):  # ragged nesting
        raise TypeError(f"{name} must be a flat sequence of integers, got {shown(steps)}") from None
    if raw.dtype == object:  # Python ints beyond int64, or mixed objects: check each one
        flat = raw.reshape(-1).tolist()
        for v in flat:
            if isinstance(v, float) and math.isfinite(v) and v == math.floor(v):
                v = int(v)
            step_count(name, v)
        raw = np.asarray([int(v) for v in flat], dtype=np.int64)
    if raw.dtype.kind not in "iuf" and raw.size:
        raise TypeError(f"{name} must be integers, got dtype {raw.dtype}")
    if raw.size:
        low, high = raw.min(), raw.max()
        if raw.dtype.kind == "f" and not (np.all(np.isfinite(raw)) and np.all(raw == np.floor(raw))):
            raise TypeError(f"{name} must be integers, got dtype {raw.dtype} with a fractional or non-finite value")
        if low < 0:
            raise ValueError(f"{name} must be >= 0, got {shown(low.item())}")
        if high > MAX_STEP or (raw.dtype.kind == "f" and high >= 2.0**63):
            raise ValueError(f"{name} must be < 2**63, got {shown(high.item())}")
    return np.ascontiguousarray(raw, dtype=np.int64).reshape(-1)


# ---- schedules -----------------------------------------------------------------------------------

def is_schedule(value: Any) -> bool:
    """True for a torchsched schedule: anything the compiler can emit (see :class:`Emitter`)."""
    return callable(getattr(value, "_emit", None))


def schedule(name: str, value: _T) -> _T:
    """A torchsched schedule (see :class:`Emitter`)."""
    if not is_schedule(value):
        raise TypeError(f"{name} must be a torchsched schedule (torchsched.schedules), got {shown(value)}")
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
