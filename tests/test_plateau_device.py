"""torchsched.lr_scheduler.ReduceLROnPlateau fed a tensor metric with tensor LRs (device mode, run here on the
CPU as a GPU metric runs it) against
torch.optim.lr_scheduler.ReduceLROnPlateau fed the same metrics as floats, with the same optimizer setup:
LRs bit for bit at every step, the attributes and state_dict at the end, resume in mid-plateau, switching
between tensor and float metrics, reassigned hyperparameters, and zero host syncs over 1,000 steps."""

from __future__ import annotations

import copy
import io
import math
import pickle
import struct
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tl

from torchsched import _signals
from torchsched import lr_scheduler as ts
from torchsched import _torch_compat

pytestmark = pytest.mark.skipif(
    not _torch_compat.PLATEAU_FILLS_TENSOR_LRS,
    reason="device mode writes the LR tensors in place; this torch replaces a reduced tensor LR by a float, and the "
           "twin then follows it on torch's path (tests/test_lr_scheduler.py compares that path with torch)")

from sync_counter import SyncCounter

F64, F32 = torch.float64, torch.float32
NAN, INF = math.nan, math.inf


@pytest.fixture(autouse=True)
def device_code_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU tensor metric takes the float path by default (reading it waits for nothing); these tests run
    the device code on the CPU instead, the code a GPU metric runs."""
    monkeypatch.setattr(_signals, "CPU_FAST_PATH", False)


def bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


# ---- setups: the same optimizer on both sides ---------------------------------------------------------

def make_opt(setup: dict[str, Any]) -> torch.optim.Optimizer:
    """Groups with their own LR tensor, or (lr None) the optimizer's default LR tensor, which torch gives
    every such group as one shared tensor."""
    groups = []
    for lr, dtype in setup["lrs"]:
        group: dict[str, Any] = {"params": [torch.nn.Parameter(torch.ones(2))]}
        if lr is not None:
            group["lr"] = torch.tensor(lr, dtype=dtype)
        groups.append(group)
    default = torch.tensor(setup["default_lr"], dtype=setup["default_dtype"])
    if setup["opt"] == "sgd":
        return torch.optim.SGD(groups, lr=default, momentum=0.9)
    return torch.optim.Adam(groups, lr=default)


lr_values = st.sampled_from([0.1, 0.05, 1.0, 0.0123456789, 0.3, 1e-3])
dtypes = st.sampled_from([F64, F32])


@st.composite
def setups(draw: Any, groups: tuple[int, int] = (1, 4), share: bool = True) -> dict[str, Any]:
    n = draw(st.integers(*groups))
    shared = share and draw(st.booleans())
    lrs = [(None if shared and draw(st.booleans()) else draw(lr_values), draw(dtypes)) for _ in range(n)]
    return {"lrs": lrs, "default_lr": draw(lr_values), "default_dtype": draw(dtypes),
            "opt": draw(st.sampled_from(["sgd", "adam"]))}


@st.composite
def plateau_kwargs(draw: Any, groups: int) -> dict[str, Any]:
    min_lr: Any = (draw(st.sampled_from([0.0, 1e-3, 0.02])) if draw(st.booleans())
                   else [draw(st.sampled_from([0.0, 1e-4, 1e-3, 0.05])) for _ in range(groups)])
    return {
        "mode": draw(st.sampled_from(["min", "max"])),
        "factor": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1 / 3])),
        "patience": draw(st.integers(0, 4)),
        "threshold": draw(st.sampled_from([0.0, 1e-4, 0.01, 0.2])),
        "threshold_mode": draw(st.sampled_from(["rel", "abs"])),
        "cooldown": draw(st.integers(0, 3)),
        "min_lr": min_lr,
        "eps": draw(st.sampled_from([0.0, 1e-8, 1e-3])),
    }


special = st.sampled_from([1.0, 0.5, 2.0, 0.999, 1.0001, 0.0, -1.0, NAN, INF, -INF, 1e-300])
# runs of one value make plateaus; the rest moves up and down
metric_runs = st.lists(st.tuples(st.one_of(special, st.floats(-5, 5)), st.integers(1, 6)), min_size=1, max_size=14)


def flatten(runs: list[tuple[float, int]]) -> list[float]:
    return [m for m, k in runs for _ in range(k)]


def build(setup: dict[str, Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    ot, os_ = make_opt(setup), make_opt(setup)
    return ot, tl.ReduceLROnPlateau(ot, **kwargs), os_, ts.ReduceLROnPlateau(os_, **kwargs)


# ---- comparison -------------------------------------------------------------------------------------

def assert_same_lrs(ot: Any, os_: Any, where: str) -> None:
    for g, (a, b) in enumerate(zip(ot.param_groups, os_.param_groups)):
        assert a["lr"].dtype == b["lr"].dtype, f"{where} group {g}"
        x, y = float(a["lr"]), float(b["lr"])
        assert bits(x) == bits(y), f"{where} group {g}: {x!r} vs {y!r}"


def same_value(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert bits(float(a)) == bits(float(b)), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            same_value(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert type(b) is float and bits(a) == bits(b), f"{where}: {a!r} vs {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def assert_same_scheduler(st_: Any, ss: Any, where: str) -> None:
    for name in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "in_cooldown"):
        same_value(getattr(st_, name), getattr(ss, name), f"{where} {name}")
    same_value(st_.get_last_lr(), ss.get_last_lr(), f"{where} get_last_lr()")
    a, b = st_.state_dict(), ss.state_dict()
    assert list(a) == list(b), where
    for key in a:
        same_value(a[key], b[key], f"{where} state_dict[{key!r}]")


def device_mode(s: Any) -> bool:
    return "_plateau_device" in vars(s)


# ---- torch, bit for bit -----------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(setup=setups(), data=st.data(), runs=metric_runs)
def test_device_mode_equals_torch(setup: dict[str, Any], data: Any, runs: list[tuple[float, int]]) -> None:
    kwargs = data.draw(plateau_kwargs(len(setup["lrs"])))
    ot, st_, os_, ss = build(setup, kwargs)
    for i, m in enumerate(flatten(runs)):
        st_.step(m)
        ss.step(torch.tensor(m, dtype=F64))
        assert device_mode(ss)
        assert_same_lrs(ot, os_, f"step {i}")
    assert_same_scheduler(st_, ss, "end")


@settings(max_examples=100, deadline=None)
@given(setup=setups(share=False), data=st.data(), runs=metric_runs)
def test_switching_metric_kinds_keeps_one_state(setup: dict[str, Any], data: Any,
                                                runs: list[tuple[float, int]]) -> None:
    """Tensor and float metrics in any order, attributes read in between: one state, torch's. (No shared LR
    tensor: see test_float_path_reduces_a_shared_lr_tensor_once_per_group.)"""
    kwargs = data.draw(plateau_kwargs(len(setup["lrs"])))
    ot, st_, os_, ss = build(setup, kwargs)
    for i, m in enumerate(flatten(runs)):
        kind = data.draw(st.sampled_from(["tensor", "tensor32", "float", "numpy"]))
        fed: Any = {"tensor": torch.tensor(m, dtype=F64), "tensor32": torch.tensor([m], dtype=F32),
                    "float": m, "numpy": torch.tensor(m, dtype=F64).numpy()[()]}[kind]
        st_.step(float(fed))  # torch sees what float() makes of it
        ss.step(fed)
        assert device_mode(ss) == kind.startswith("tensor")
        assert_same_lrs(ot, os_, f"step {i} ({kind})")
        if data.draw(st.booleans()):
            assert_same_scheduler(st_, ss, f"step {i} ({kind})")
    assert_same_scheduler(st_, ss, "end")


REASSIGN = st.sampled_from([("factor", 0.5), ("factor", 0.0), ("patience", 0), ("patience", 3), ("cooldown", 2),
                            ("threshold", 0.05), ("threshold_mode", "abs"), ("mode", "max"), ("eps", 1e-3),
                            ("min_lrs", 0.04), ("best", 0.7), ("num_bad_epochs", 2), ("cooldown_counter", 1)])


@settings(max_examples=100, deadline=None)
@given(setup=setups(), data=st.data(), runs=metric_runs, edits=st.lists(st.tuples(st.integers(0, 60), REASSIGN),
                                                                        max_size=4))
def test_reassigned_attributes_take_effect_like_torch(setup: dict[str, Any], data: Any,
                                                      runs: list[tuple[float, int]],
                                                      edits: list[tuple[int, tuple[str, Any]]]) -> None:
    """torch reads its attributes at every step: the cached device config follows a reassignment, and
    assigning best or a counter overwrites the device state."""
    kwargs = data.draw(plateau_kwargs(len(setup["lrs"])))
    ot, st_, os_, ss = build(setup, kwargs)
    for i, m in enumerate(flatten(runs)):
        for when, (name, value) in edits:
            if when == i:
                for s in (st_, ss):
                    setattr(s, name, [value] * len(setup["lrs"]) if name == "min_lrs" else value)
        st_.step(m)
        ss.step(torch.tensor(m, dtype=F64))
        assert_same_lrs(ot, os_, f"step {i}")
    assert_same_scheduler(st_, ss, "end")


# ---- resume -----------------------------------------------------------------------------------------

def roundtrip(state: dict[str, Any], how: str) -> dict[str, Any]:
    if how == "pickle":
        return pickle.loads(pickle.dumps(state))  # type: ignore[no-any-return]
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # type: ignore[no-any-return]


@settings(max_examples=60, deadline=None)
@given(setup=setups(), data=st.data(), how=st.sampled_from(["torch", "pickle"]))
def test_resume_mid_plateau_is_bit_identical(setup: dict[str, Any], data: Any, how: str) -> None:
    kwargs = dict(data.draw(plateau_kwargs(len(setup["lrs"]))), mode="min", threshold_mode="rel", threshold=1e-4,
                  patience=data.draw(st.integers(3, 6)))
    metrics = [1.0, 0.9, 0.8] + [0.8] * 40 + [0.5] + [0.6] * 30
    cut = data.draw(st.integers(4, 6))  # inside the first plateau: bad epochs counted, no reduction yet
    ot, st_, os_, ss = build(setup, kwargs)
    for m in metrics[:cut]:
        st_.step(m)
        ss.step(torch.tensor(m, dtype=F64))
    assert 0 < ss.num_bad_epochs <= kwargs["patience"]
    state = roundtrip(ss.state_dict(), how)
    assert state.keys() == st_.state_dict().keys()
    o2 = make_opt(setup)
    o2.load_state_dict(os_.state_dict())
    s2 = ts.ReduceLROnPlateau(o2, **kwargs)
    s2.load_state_dict(state)
    for i, m in enumerate(metrics[cut:]):
        st_.step(m)
        for s in (ss, s2):
            s.step(torch.tensor(m, dtype=F64))
        assert_same_lrs(ot, os_, f"step {cut + i}")
        assert_same_lrs(ot, o2, f"step {cut + i} (resumed)")
    assert_same_scheduler(st_, s2, "end (resumed)")
    assert_same_scheduler(st_, ss, "end")


def _shared_lr_opt(groups: int = 3, lr: float = 0.1) -> torch.optim.Optimizer:
    """``groups`` param groups that all take the optimizer's default LR: one tensor, shared."""
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(1))]} for _ in range(groups)],
                           lr=torch.tensor(lr, dtype=F64))


def test_state_dicts_cross_between_torch_and_device_mode() -> None:
    metrics = [1.0, 1.0, 1.0, 0.5, 0.7, 0.7, 0.7, 0.7]
    for src, dst in ((tl, ts), (ts, tl)):
        o, o2, oref = (torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(1))],
                                         "lr": torch.tensor(lr, dtype=F64)} for lr in (0.1, 0.3)], lr=0.1)
                       for _ in range(3))
        s, ref = src.ReduceLROnPlateau(o, patience=1), tl.ReduceLROnPlateau(oref, patience=1)
        for m in metrics[:3]:
            s.step(torch.tensor(m, dtype=F64))
            ref.step(m)
        s2 = dst.ReduceLROnPlateau(o2, patience=1)
        o2.load_state_dict(o.state_dict())
        s2.load_state_dict(roundtrip(s.state_dict(), "torch"))
        for m in metrics[3:]:
            s2.step(torch.tensor(m, dtype=F64))
            ref.step(m)
        assert_same_lrs(oref, o2, f"{src.__name__} -> {dst.__name__}")
        assert_same_scheduler(ref, s2, f"{src.__name__} -> {dst.__name__}")


def test_load_state_dict_replaces_the_device_state() -> None:
    o = _shared_lr_opt(1)
    s = ts.ReduceLROnPlateau(o, patience=0, factor=0.5)
    for m in (1.0, 2.0, 2.0):
        s.step(torch.tensor(m, dtype=F64))
    assert device_mode(s)
    state = s.state_dict()
    state.update(best=0.25, num_bad_epochs=0, cooldown_counter=0)
    s.load_state_dict(state)
    assert not device_mode(s) and s.best == 0.25
    s.step(torch.tensor(0.3, dtype=F64))  # worse than 0.25: a bad epoch, patience 0: reduced
    assert s.best == 0.25 and float(o.param_groups[0]["lr"]) == 0.1 * 0.5 ** 3
    with pytest.raises(ValueError):
        s.load_state_dict(dict(state, mode="sideways"))  # torch's check: nothing changes
    assert s.best == 0.25 and s.mode == "min" and s.num_bad_epochs == 0


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copies_step_on_identically(how: str) -> None:
    o = _shared_lr_opt(2)
    s = ts.ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5)
    for m in (1.0, 1.0, 1.0, 1.0):
        s.step(torch.tensor(m, dtype=F64))
    twin = pickle.loads(pickle.dumps(s)) if how == "pickle" else copy.deepcopy(s)
    assert not device_mode(twin) and twin.state_dict().keys() == s.state_dict().keys()
    for m in (1.0, 0.5, 0.6, 0.6, 0.6, 0.6):
        for x in (s, twin):
            x.step(torch.tensor(m, dtype=F64))
        assert [float(g["lr"]) for g in twin.optimizer.param_groups] == [float(g["lr"]) for g in o.param_groups]
    assert_same_scheduler(s, twin, "end")


# ---- what device mode stores ------------------------------------------------------------------------

def test_shared_lr_tensor_is_reduced_once_per_group_as_torch_does() -> None:
    ot, os_ = _shared_lr_opt(3), _shared_lr_opt(3)
    st_, ss = tl.ReduceLROnPlateau(ot, patience=0, factor=0.5), ts.ReduceLROnPlateau(os_, patience=0, factor=0.5)
    for m in (1.0, 2.0):
        st_.step(m)
        ss.step(torch.tensor(m, dtype=F64))
    assert float(os_.param_groups[0]["lr"]) == float(ot.param_groups[0]["lr"]) == 0.1 * 0.5 ** 3
    assert_same_scheduler(st_, ss, "end")


def test_float_path_reduces_a_shared_lr_tensor_once_per_group() -> None:
    ot, os_ = _shared_lr_opt(3), _shared_lr_opt(3)
    st_, ss = tl.ReduceLROnPlateau(ot, patience=0, factor=0.5), ts.ReduceLROnPlateau(os_, patience=0, factor=0.5)
    for m in (1.0, 2.0):
        st_.step(m)
        ss.step(m)
    assert float(os_.param_groups[0]["lr"]) == float(ot.param_groups[0]["lr"]) == 0.1 * 0.5 ** 3


def test_lrs_are_written_in_place_and_last_lr_is_a_list_of_clones() -> None:
    groups = [{"params": [torch.nn.Parameter(torch.ones(1))], "lr": torch.tensor(lr, dtype=dt)}
              for lr, dt in ((0.1, F64), (0.2, F32), (0.3, F64))]
    groups[2]["lr"] = torch.tensor([0.3], dtype=F64)  # a one-element LR of shape (1,), as torch allows
    o = torch.optim.SGD(groups, lr=0.1)
    held = [g["lr"] for g in o.param_groups]
    s = ts.ReduceLROnPlateau(o, patience=0, factor=0.5)
    for m in (1.0, 2.0, 3.0):
        s.step(torch.tensor(m))
    assert all(g["lr"] is h for g, h in zip(o.param_groups, held))
    last: list[Any] = s.get_last_lr()
    assert [float(x) for x in last] == [float(h) for h in held] and float(held[0]) == 0.1 * 0.25
    for x, h in zip(last, held):
        assert x is not h and x.dtype == h.dtype and x.shape == h.shape and x._base is None
        assert x.untyped_storage().data_ptr() != h.untyped_storage().data_ptr()
    held[0].fill_(7.0)  # an LR changed after the step: _last_lr is what the step left, as in torch
    assert float(s.get_last_lr()[0]) == 0.1 * 0.25


def test_attributes_are_python_numbers() -> None:
    o = _shared_lr_opt(1)
    s = ts.ReduceLROnPlateau(o, patience=2, cooldown=1)
    s.step(torch.tensor(0.5, dtype=F32))
    assert device_mode(s)
    assert (type(s.best), type(s.num_bad_epochs), type(s.cooldown_counter)) == (float, int, int)
    assert s.best == 0.5 and s.num_bad_epochs == 0 and s.cooldown_counter == 0 and s.in_cooldown is False
    sd = s.state_dict()
    assert "_plateau_device" not in sd and type(sd["best"]) is float and sd["last_epoch"] == 1
    assert set(sd) == set(tl.ReduceLROnPlateau(_shared_lr_opt(1)).state_dict())


def test_nan_metric_is_a_bad_epoch() -> None:
    o = _shared_lr_opt(1)
    s = ts.ReduceLROnPlateau(o, patience=1, factor=0.5)
    for m in (1.0, NAN, NAN):
        s.step(torch.tensor(m, dtype=F64))
    assert float(o.param_groups[0]["lr"]) == 0.05 and s.best == 1.0 and s.num_bad_epochs == 0


def test_float_lr_or_mismatched_min_lrs_take_torchs_float_path() -> None:
    o = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.1},
                         {"params": [torch.nn.Parameter(torch.ones(1))], "lr": torch.tensor(0.2, dtype=F64)}], lr=0.1)
    s = ts.ReduceLROnPlateau(o, patience=0, factor=0.5)
    for m in (1.0, 2.0):
        s.step(torch.tensor(m, dtype=F64))
    assert not device_mode(s) and o.param_groups[0]["lr"] == 0.05 and float(o.param_groups[1]["lr"]) == 0.1
    o1 = _shared_lr_opt(1)
    o1.param_groups[0]["lr"].requires_grad_()  # an in-place write would raise: torch's path, which writes less
    s1 = ts.ReduceLROnPlateau(o1)
    s1.step(torch.tensor(1.0))
    assert not device_mode(s1) and s1.best == 1.0
    # a group added after construction with a list min_lr: torch raises when a reduction is due, not before
    got = []
    for M in (tl, ts):
        o2 = _shared_lr_opt(1)
        s2 = M.ReduceLROnPlateau(o2, patience=1, min_lr=[0.0])
        s2.step(torch.tensor(1.0, dtype=F64))
        o2.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": torch.tensor(0.07, dtype=F64)})
        s2.step(torch.tensor(2.0, dtype=F64))  # one bad epoch: fine
        with pytest.raises(RuntimeError, match="differs from when"):
            s2.step(torch.tensor(2.0, dtype=F64))
        got.append((s2.num_bad_epochs, s2.cooldown_counter, s2.best, s2.last_epoch))
    assert got[0] == got[1]


def test_metric_and_lr_on_different_devices() -> None:
    o = _shared_lr_opt(2)
    s = ts.ReduceLROnPlateau(o)
    with pytest.raises(ValueError, match=r"metric is on meta.*LR tensor on cpu"):
        s.step(torch.empty((), device="meta"))
    assert s.last_epoch == 0  # refused before anything changed


# ---- zero host syncs --------------------------------------------------------------------------------

def test_a_thousand_device_steps_never_sync() -> None:
    groups: list[dict[str, Any]] = [
        {"params": [torch.nn.Parameter(torch.ones(1))]},  # these two share the default LR tensor
        {"params": [torch.nn.Parameter(torch.ones(1))]},
        {"params": [torch.nn.Parameter(torch.ones(1))], "lr": torch.tensor(0.3, dtype=F32)},
        {"params": [torch.nn.Parameter(torch.ones(1))], "lr": torch.tensor(0.2, dtype=F64)}]
    kwargs: dict[str, Any] = dict(patience=3, cooldown=2, factor=0.9, min_lr=[1e-6, 0.0, 1e-3, 0.0], eps=0.0)
    cycle = [1.0, 0.9, 0.95, NAN, 0.97, 0.99, 0.96, 0.91, INF, 0.92]
    ot = torch.optim.SGD(copy.deepcopy(groups), lr=torch.tensor(0.1, dtype=F64))
    os_ = torch.optim.SGD(copy.deepcopy(groups), lr=torch.tensor(0.1, dtype=F64))
    st_, ss = tl.ReduceLROnPlateau(ot, **kwargs), ts.ReduceLROnPlateau(os_, **kwargs)
    metrics = [torch.tensor(cycle[i % len(cycle)] * (1 - i / 2000), dtype=F64) for i in range(1000)]
    lasts = []
    with SyncCounter() as counter:
        for i, m in enumerate(metrics):
            ss.step(m)
            if i % 10 == 0:
                lasts.append(ss.get_last_lr())
        ss.factor = 0.8  # a reassignment rebuilds the cached config, on the device too
        for m in metrics[:100]:
            ss.step(m)
    assert counter.count == 0, counter.ops
    for i, m in enumerate(metrics):
        st_.step(float(m))
        if i % 10 == 0:
            same_value(lasts[i // 10], st_.get_last_lr(), f"step {i} get_last_lr()")
    st_.factor = 0.8
    for m in metrics[:100]:
        st_.step(float(m))
    assert_same_lrs(ot, os_, "end")
    assert_same_scheduler(st_, ss, "end")
    assert float(os_.param_groups[0]["lr"]) < 0.01  # it did reduce, many times


def test_the_counter_sees_the_float_path() -> None:
    """The control: a tensor metric with a float LR is torch's float(metric), which the counter sees."""
    o = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    s = ts.ReduceLROnPlateau(o)
    with SyncCounter() as counter:
        for _ in range(3):
            s.step(torch.tensor(1.0))
    assert counter.ops["_local_scalar_dense"] == 3


# ---- CUDA -------------------------------------------------------------------------------------------

@pytest.mark.cuda
def test_cuda_device_mode_equals_torch_without_syncs() -> None:
    from cuda_helpers import SyncErrors

    def opt() -> torch.optim.Optimizer:
        groups: list[dict[str, Any]] = [{"params": [torch.nn.Parameter(torch.ones(1, device="cuda"))]}
                                        for _ in range(2)]
        groups.append({"params": [torch.nn.Parameter(torch.ones(1, device="cuda"))],
                       "lr": torch.tensor(0.3, dtype=F32, device="cuda")})
        return torch.optim.SGD(groups, lr=torch.tensor(0.1, dtype=F64, device="cuda"))

    kwargs: dict[str, Any] = dict(patience=2, cooldown=1, factor=0.5, min_lr=[0.0, 1e-3, 0.01])
    ot, os_ = opt(), opt()
    st_, ss = tl.ReduceLROnPlateau(ot, **kwargs), ts.ReduceLROnPlateau(os_, **kwargs)
    cycle = [1.0, 0.9, 0.95, NAN, 0.97, 0.99, 0.96, 0.91]
    metrics = [torch.tensor(cycle[i % len(cycle)], dtype=F64, device="cuda") for i in range(200)]
    with SyncErrors():
        for m in metrics:
            ss.step(m)
            ss.get_last_lr()
    for m in metrics:
        st_.step(m)
    assert_same_lrs(ot, os_, "end")
    assert_same_scheduler(st_, ss, "end")
    with pytest.raises(ValueError, match="cuda"):
        ts.ReduceLROnPlateau(_shared_lr_opt(1)).step(torch.tensor(1.0, device="cuda"))


def test_a_cpu_metric_takes_the_float_path_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU a tensor metric is read where it lies (no device to wait for), through the C-level float path,
    with torch's numbers."""
    monkeypatch.setattr(_signals, "CPU_FAST_PATH", True)
    p = torch.nn.Parameter(torch.ones(1))
    ot = torch.optim.SGD([p], lr=torch.tensor(0.1, dtype=F64))
    os_ = torch.optim.SGD([p], lr=torch.tensor(0.1, dtype=F64))
    st_, ss = tl.ReduceLROnPlateau(ot, patience=1), ts.ReduceLROnPlateau(os_, patience=1)
    for m in (1.0, 2.0, 2.0, 2.0, 0.5, 3.0, 3.0):
        st_.step(torch.tensor(m))
        ss.step(torch.tensor(m))
        assert bits(float(os_.param_groups[0]["lr"])) == bits(float(ot.param_groups[0]["lr"]))
    assert "_plateau_device" not in ss.__dict__
    assert ss.state_dict() == {k: v for k, v in st_.state_dict().items() if k != "_last_lr"} | {
        "_last_lr": ss.state_dict()["_last_lr"]}

