"""Atomic ``load_state_dict`` for the drop-in classes: a state dict is checked before it is applied, and what
is applied is taken back if applying it fails, so a failed load leaves every scheduler it touched as it was."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence


def _snapshot(obj: Any) -> tuple[Any, dict[str, Any], tuple[Any, Any] | None]:
    last = (obj._last_lr_value, obj._last_lr_source) if hasattr(obj, "_last_lr_source") else None
    return obj, obj.__dict__.copy(), last


def _restore(obj: Any, state: dict[str, Any], last: tuple[Any, Any] | None) -> None:
    obj.__dict__.clear()
    obj.__dict__.update(state)
    if last is not None:
        obj._last_lr_value, obj._last_lr_source = last
    obj_invalidate = getattr(obj, "_invalidate_program", None)
    if obj_invalidate is not None:
        obj_invalidate()  # the program is rebuilt from the restored state at the next step


@contextlib.contextmanager
def restored_on_error(objects: Sequence[Any]) -> Iterator[None]:
    """Runs the block; if it raises, puts back the ``__dict__`` (and a scheduler's ``_last_lr``) of each object as
    it was before the block (the schedulers, and the callable objects whose ``__dict__`` torch's loads update)."""
    snapshots = [_snapshot(obj) for obj in objects if hasattr(obj, "__dict__")]
    try:
        yield
    except BaseException:
        for obj, state, last in snapshots:
            _restore(obj, state, last)
        raise


def state_holders(scheduler: Any) -> list[Any]:
    """The scheduler and every object a load of its state dict may change in place."""
    holders = [scheduler]
    for fn in scheduler.__dict__.get("lr_lambdas", ()):
        holders.append(fn)
    custom = scheduler.__dict__.get("_scale_fn_custom")
    if custom is not None:
        holders.append(custom)
    for inner in scheduler.__dict__.get("_schedulers", ()):
        holders.extend(state_holders(inner) if hasattr(inner, "__dict__") else ())
    return holders
