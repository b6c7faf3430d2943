"""The one LR store into param groups (a float in the group dict, an element of a buffer the groups hold
views of, a tensor that gets fill_): whichever caller stores, a float someone holds never changes under
them, a tensor LR stays the same object, and the stored values are the ones computed."""

from __future__ import annotations

import os
import sys
import sysconfig

import numpy as np
import pytest
import torch

import torchsched.lr_scheduler as ts
from torchsched import _core
from torchsched import schedules as S
from torchsched._program import compile_many


def _engine(groups: int) -> _core.HostEngine:
    prog, roots = compile_many([S.linear(10, init=1.0, final=0.0)] * groups)
    return _core.HostEngine(prog, roots, np.arange(1.0, groups + 1.0), 0)


def test_engine_float_store_never_changes_a_float_someone_holds() -> None:
    eng = _engine(2)
    groups: list[dict[str, object]] = [{"lr": 0.0}, {"lr": 0.0}]
    eng.write_dicts(groups, "lr")
    held = groups[0]["lr"]
    assert isinstance(held, float)
    snapshot = held.hex()  # float(held) would be the same object
    for _ in range(3):
        eng.advance_dicts(groups, "lr")
    assert held.hex() == snapshot == (1.0).hex()
    assert [groups[g]["lr"] for g in range(2)] == eng.lrs() == [0.7, 1.4]
    assert all(type(g["lr"]) is float for g in groups)


def test_engine_float_store_replaces_non_float_entries_with_floats() -> None:
    eng = _engine(2)
    groups: list[dict[str, object]] = [{"lr": 3}, {"lr": 0.5}]  # an int, and a float someone holds
    held = groups[1]["lr"]
    eng.advance_dicts(groups, "lr", read_prev=True)
    assert all(type(g["lr"]) is float for g in groups) and [g["lr"] for g in groups] == eng.lrs() == [0.9, 1.8]
    assert held == 0.5
    with pytest.raises(KeyError, match="param group 0 has no 'lr'"):
        eng.advance_dicts([{}, {}], "lr", read_prev=True)
    assert eng.step == 1  # the failed call left the engine where it was


def test_plateau_fills_tensor_lrs_and_never_changes_a_held_float() -> None:
    def optimizer() -> torch.optim.Optimizer:
        groups = [{"params": [torch.nn.Parameter(torch.ones(2))], "lr": 0.1},
                  {"params": [torch.nn.Parameter(torch.ones(2))], "lr": torch.tensor(0.2, dtype=torch.float64)}]
        return torch.optim.SGD(groups, lr=0.1)

    ours, theirs = optimizer(), optimizer()
    s = ts.ReduceLROnPlateau(ours, patience=0, factor=0.5)
    t = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, patience=0, factor=0.5)
    tensor_lr, held = ours.param_groups[1]["lr"], ours.param_groups[0]["lr"]
    theirs_tensor_lr = theirs.param_groups[1]["lr"]
    snapshot = held.hex()
    for metric in (1.0, 1.0, 1.0):  # no improvement after the first: a reduction every step
        s.step(metric)
        t.step(metric)
    # filled in place where the installed torch fills it (2.13 on), a new tensor where it replaces it
    assert (ours.param_groups[1]["lr"] is tensor_lr) == (theirs.param_groups[1]["lr"] is theirs_tensor_lr)
    tensor_lr = ours.param_groups[1]["lr"]
    assert float(tensor_lr) == float(theirs.param_groups[1]["lr"]) == pytest.approx(0.05)
    assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"] == pytest.approx(0.025)
    assert held.hex() == snapshot == (0.1).hex()
    last = s.get_last_lr()
    assert last[0] == ours.param_groups[0]["lr"] and float(last[1]) == float(tensor_lr)
    # _last_lr holds a copy of the tensor LR, or (before torch 2.13) the group's tensor itself, as torch's does
    assert (last[1] is tensor_lr) == (t.get_last_lr()[1] is theirs.param_groups[1]["lr"])


def test_float_store_reuses_a_float_only_the_dict_holds_where_the_shortcut_is_built() -> None:
    """The in-place float store is on for GIL CPython before 3.14 and off in the portable build
    (TORCHSCHED_EXPECT_PORTABLE=1 says the build is that one): a build that lost it, or one that kept it
    where it must be off, would pass every other test."""
    gil = not sysconfig.get_config_var("Py_GIL_DISABLED")
    portable = os.environ.get("TORCHSCHED_EXPECT_PORTABLE") == "1"
    in_place = sys.implementation.name == "cpython" and gil and sys.version_info < (3, 14) and not portable
    eng = _engine(1)
    groups: list[dict[str, object]] = [{"lr": 0.0}]
    eng.write_dicts(groups, "lr")
    first = id(groups[0]["lr"])  # the new float is made while the old one is alive: ids differ unless reused
    eng.advance_dicts(groups, "lr")
    assert (id(groups[0]["lr"]) == first) is in_place
    assert groups[0]["lr"] == eng.lrs()[0] == 0.9


# ---- all or nothing: a step that would store a non-finite LR stores none ---------------------------

def _growing_engine() -> _core.HostEngine:
    """Two groups on x10 per step; the second reaches inf at step 9 (1e300 * 10**9), the first never does."""
    prog, roots = compile_many([S.exponential(10.0)] * 2)
    return _core.HostEngine(prog, roots, np.array([1.0, 1e300]), 8)


def test_a_step_that_overflows_stores_nothing_in_the_group_dicts() -> None:
    eng = _growing_engine()
    groups: list[dict[str, object]] = [{"lr": 0.0}, {"lr": 0.0}]
    eng.write_dicts(groups, "lr")
    before = [groups[0]["lr"], groups[1]["lr"]]
    assert before == eng.lrs() == [pytest.approx(1e8), pytest.approx(1e308)]
    with pytest.raises(ValueError, match=r"LR of group 1 is not finite at step 9.*nothing was stored"):
        eng.advance_dicts(groups, "lr")
    assert [groups[0]["lr"], groups[1]["lr"]] == before == eng.lrs()  # group 0 did not move either
    assert eng.step == 8


@pytest.mark.parametrize("dtype, code", [(np.float64, 1), (np.float32, 0)], ids=["float64", "float32"])
def test_a_step_that_overflows_stores_nothing_in_the_buffer(dtype, code) -> None:
    prog, roots = compile_many([S.exponential(10.0)] * 2)
    # float64: the second group overflows at step 9 as above; float32 (max 3.4e38): 1e30 * 10**9 does not
    # fit at step 9 although its float64 value is finite.
    eng = _core.HostEngine(prog, roots, np.array([1.0, 1e300 if code == 1 else 1e30]), 8)
    out = np.zeros(2, dtype=dtype)
    eng.write(out.ctypes.data, code, 2)
    before, mirror = out.copy(), eng.lrs()
    with pytest.raises(ValueError, match=r"LR of group 1 is not finite at step 9"):
        eng.advance(out.ctypes.data, code, 2)
    assert out.tolist() == before.tolist() and np.isfinite(out).all()
    assert eng.lrs() == mirror and eng.step == 8
