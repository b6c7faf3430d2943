"""The compiled core (torchsched._core) used directly, the Engine on CPU buffers, and bad input at every
layer: each failure is a ValueError/TypeError whose message names the argument and the value."""

from __future__ import annotations

import glob
import math
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchsched import Engine, _core
from torchsched import schedules as S
from torchsched._program import OP_DTYPE, Code, compile_many

FLOAT32, FLOAT64 = 0, 1


def params(*xs: float) -> tuple[float, ...]:
    return tuple(float(x) for x in xs) + (0.0,) * (_core.NUM_PARAMS - len(xs))


def table(rows: list[tuple[int, int, int, int, tuple[float, ...]]]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=OP_DTYPE)
    for i, row in enumerate(rows):
        out[i] = row
    return out


def leaf(code: int, *p: float, a: int = 0, b: int = 0) -> tuple[int, int, int, int, tuple[float, ...]]:
    return (int(code), 1, a, b, params(*p))


def program(rows: list[Any], aux: Any = ()) -> _core.Program:
    return _core.Program(table(rows), np.asarray(aux, dtype=np.float64))


# ---- module facts --------------------------------------------------------------------------------

def test_module_constants_match_the_python_record() -> None:
    assert _core.OP_RECORD_BYTES == OP_DTYPE.itemsize == 16 + 8 * _core.NUM_PARAMS
    assert _core.NUM_PARAMS == 8
    assert isinstance(_core.MAX_DEPTH, int) and _core.MAX_DEPTH >= 4


def test_cuda_flags_are_bools() -> None:
    built, available = _core.built_with_cuda(), _core.cuda_available()
    assert isinstance(built, bool) and isinstance(available, bool)
    assert built or not available  # no device path without the CUDA backend


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*")), reason="this machine has an NVIDIA device")
def test_cuda_not_available_without_a_device() -> None:
    assert _core.cuda_available() is False


def test_advance_cuda_without_a_device_path_fails_cleanly() -> None:
    args = dict(ops=0, aux=0, roots=0, scale=0, groups=1, step=0, blocks_done=0, mirror=0, out=0, dtype=FLOAT32,
                read_prev=False, found_inf=0, advance=True, stream=0)
    if _core.built_with_cuda():
        with pytest.raises(ValueError, match="required device pointer is null"):
            _core.advance_cuda(**args)
    else:
        with pytest.raises(RuntimeError, match="built without CUDA.*TORCHSCHED_CUDA=ON"):
            _core.advance_cuda(**args)


# ---- Program: evaluation ---------------------------------------------------------------------------

def test_program_evaluates_a_leaf_and_its_records_round_trip() -> None:
    ops = table([leaf(Code.STEP, 2.0, 10.0, 0.5)])
    prog = _core.Program(ops, np.zeros(0))
    assert prog.size == 1
    assert prog.value(0, 0) == 2.0 and prog.value(0, 10) == 1.0 and prog.value(0, 25) == 0.5
    assert prog.op_bytes() == ops.tobytes()
    assert prog.aux_array().dtype == np.float64
    v = prog.values(0, np.arange(30))
    assert v.dtype == np.float64 and v.shape == (30,)
    assert np.array_equal(v, [prog.value(0, t) for t in range(30)])


def test_program_combinators_walk_the_preorder_table() -> None:
    # sequence([constant(1), scale(shift(linear(10), 5), 2)], [3]) on a hand-built table.
    rows = [
        (int(Code.SEQUENCE), 5, 0, 2, params()),
        leaf(Code.CONSTANT, 1.0),
        (int(Code.SCALE), 3, 0, 1, params(2.0)),
        (int(Code.SHIFT), 2, 0, 1, params(5.0)),
        leaf(Code.POLYNOMIAL, 1.0, 0.0, 10.0, 1.0, 0.0, 1.0),
    ]
    prog = program(rows, [3.0])
    lin = lambda t: max(0.0, 1 - t / 10)  # noqa: E731
    expected = [1.0 if t < 3 else 2.0 * lin(t - 3 + 5) for t in range(20)]
    np.testing.assert_allclose(prog.values(0, np.arange(20)), expected, rtol=1e-15)
    # A product of two leaves, as a second tree in the same table.
    rows2 = rows + [(int(Code.PRODUCT), 3, 0, 2, params()), leaf(Code.CONSTANT, 0.5), leaf(Code.CONSTANT, 3.0)]
    prog2 = program(rows2, [3.0])
    assert prog2.value(5, 7) == 1.5 and prog2.value(0, 7) == prog.value(0, 7)


def test_program_values_long_arrays_equal_single_values() -> None:
    # Above the GIL-release threshold the loop runs without the GIL; the numbers must not change.
    sched = S.warmup(100) >> S.cosine_restarts(300, period_mult=1.5, decay=0.7)
    steps = np.arange(0, 50_000, 3, dtype=np.int64)
    many = sched.values(steps)
    assert np.array_equal(many[::997], [sched(int(t)) for t in steps[::997]])
    assert np.array_equal(many, sched._program().values(0, steps))


def test_program_max_depth_is_allowed_and_one_more_is_not() -> None:
    def nested(depth: int) -> list[Any]:
        rows = [(int(Code.SHIFT), depth + 1 - i, 0, 1, params(1.0)) for i in range(depth)]
        return rows + [leaf(Code.POLYNOMIAL, 1.0, 0.0, 100.0, 1.0, 0.0, 1.0)]

    ok = program(nested(_core.MAX_DEPTH))
    assert ok.value(0, 0) == pytest.approx(1 - _core.MAX_DEPTH / 100, rel=1e-15)
    with pytest.raises(ValueError, match=rf"nest deeper than {_core.MAX_DEPTH}"):
        program(nested(_core.MAX_DEPTH + 1))


# ---- Program: malformed tables -------------------------------------------------------------------

P = params
BAD_PROGRAMS: list[tuple[str, list[Any], list[float], str]] = [
    ("unknown code", [leaf(99)], [], r"program node 0: unknown op code 99"),
    ("code in the gap", [leaf(19)], [], r"program node 0: unknown op code 19"),
    ("negative code", [leaf(-1)], [], r"program node 0: unknown op code -1"),
    ("size 0", [(0, 0, 0, 0, P(1.0))], [], r"program node 0: subtree size 0 out of range"),
    ("size past the end", [(0, 5, 0, 0, P(1.0))], [], r"program node 0: subtree size 5 out of range"),
    ("leaf of size 2", [(0, 2, 0, 0, P(1.0)), leaf(0, 1.0)], [], r"program node 0: a leaf must have size 1"),
    ("table out of bounds", [leaf(Code.PIECEWISE_CONST, a=0, b=3)], [1.0, 2.0],
     r"program node 0: table out of bounds"),
    ("negative table offset", [leaf(Code.PIECEWISE_CONST, a=-1, b=0)], [1.0], r"program node 0: table out of bounds"),
    ("interpolation past the table", [leaf(Code.INTERP, a=1, b=2)], [0.0, 1.0, 2.0],
     r"program node 0: table out of bounds"),
    ("NaN parameter", [leaf(Code.CONSTANT, math.nan)], [], r"program node 0: parameter 0 is not finite"),
    ("inf parameter", [leaf(Code.COSINE, 1.0, 0.0, math.inf)], [], r"program node 0: parameter 2 is not finite"),
    ("NaN in a table", [leaf(Code.PIECEWISE_CONST, a=0, b=1)], [math.nan, 1.0, 2.0],
     r"program node 0: table value is not finite"),
    ("unsorted milestones", [leaf(Code.PIECEWISE_CONST, a=0, b=2)], [5.0, 2.0, 1.0, 2.0, 3.0],
     r"program node 0: table times must be sorted"),
    ("repeated interpolation times", [leaf(Code.INTERP, a=0, b=2)], [3.0, 3.0, 1.0, 2.0],
     r"program node 0: interpolation times must be distinct"),
    ("interpolation without points", [leaf(Code.INTERP, a=0, b=0)], [1.0],
     r"program node 0: interpolation needs at least one point"),
    ("scale with two children", [(int(Code.SCALE), 3, 0, 1, P(2.0)), leaf(0, 1.0), leaf(0, 1.0)], [],
     r"program node 0: needs exactly one child"),
    ("sequence child count", [(int(Code.SEQUENCE), 2, 0, 2, P()), leaf(0, 1.0)], [1.0],
     r"program node 0: child count mismatch"),
    ("unsorted sequence boundaries", [(int(Code.SEQUENCE), 4, 0, 3, P()), leaf(0, 1.0), leaf(0, 2.0), leaf(0, 3.0)],
     [5.0, 2.0], r"program node 0: boundaries must be sorted"),
    ("NaN sequence boundary", [(int(Code.SEQUENCE), 3, 0, 2, P()), leaf(0, 1.0), leaf(0, 2.0)], [math.nan],
     r"program node 0: boundary is not finite"),
    ("product child count", [(int(Code.PRODUCT), 2, 0, 3, P()), leaf(0, 1.0)], [],
     r"program node 0: child count mismatch"),
    ("bad node deep inside", [(int(Code.PRODUCT), 3, 0, 2, P()), leaf(0, 1.0), leaf(0, math.nan)], [],
     r"program node 2: parameter 0 is not finite"),
    ("empty program", [], [], r"program is empty"),
]


@pytest.mark.parametrize("rows,aux,match", [pytest.param(r, a, m, id=name) for name, r, a, m in BAD_PROGRAMS])
def test_malformed_programs_are_rejected(rows: list[Any], aux: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        program(rows, aux)


def test_program_rejects_records_of_the_wrong_layout() -> None:
    with pytest.raises(ValueError, match=rf"ops must be a contiguous 1-d array of {_core.OP_RECORD_BYTES}-byte records"):
        _core.Program(np.zeros(4, dtype=np.float64), np.zeros(1))
    strided = np.zeros(4, dtype=OP_DTYPE)[::2]
    with pytest.raises(ValueError, match="contiguous 1-d array"):
        _core.Program(strided, np.zeros(1))


def test_program_rejects_bad_roots_and_negative_steps() -> None:
    prog = program([leaf(Code.CONSTANT, 1.0), (int(Code.SCALE), 2, 0, 1, P(2.0)), leaf(Code.CONSTANT, 3.0)])
    assert prog.value(1, 0) == 6.0
    with pytest.raises(ValueError, match=r"root 3 out of range"):
        prog.value(3, 0)
    with pytest.raises(ValueError, match=r"root -1 out of range"):
        prog.values(-1, np.arange(3))
    with pytest.raises(ValueError, match=r"root 2 is not the start of a program"):
        prog.value(2, 0)  # the child of the scale node
    with pytest.raises(ValueError, match=r"step must be >= 0, got -1"):
        prog.value(0, -1)
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -5"):
        prog.values(0, np.array([0, 3, -5]))


# ---- core Engine -----------------------------------------------------------------------------------

def _core_engine(groups: int = 2, step: int = 0) -> _core.HostEngine:
    prog = program([leaf(Code.STEP, 1.0, 2.0, 0.5)])
    return _core.HostEngine(prog, np.zeros(groups, dtype=np.int32), np.arange(1.0, groups + 1.0), step)


def test_core_engine_writes_and_keeps_a_mirror() -> None:
    eng = _core_engine(2)
    out = np.zeros(2)
    eng.write(out.ctypes.data, FLOAT64, 2)
    assert out.tolist() == [1.0, 2.0] and eng.lrs() == [1.0, 2.0] and eng.step == 0
    for _ in range(3):
        eng.advance(out.ctypes.data, FLOAT64, 2)
    assert eng.step == 3 and out.tolist() == [0.5, 1.0] and np.array_equal(eng.mirror(), out)
    eng.advance(0, FLOAT64, 0)  # no buffer: the mirror alone
    assert eng.step == 4 and eng.lrs() == [0.25, 0.5]
    assert eng.groups == 2 and eng.roots().tolist() == [0, 0] and eng.scale().tolist() == [1.0, 2.0]
    eng.set_scale(1, 4.0)
    eng.write(0, FLOAT64, 0)
    assert eng.lrs() == [0.25, 1.0]


def test_core_engine_failed_advance_leaves_the_step() -> None:
    eng = _core_engine(2, step=5)
    out = np.zeros(2)
    with pytest.raises(ValueError, match=r"dtype code must be 0 \(float32\) or 1 \(float64\), got 7"):
        eng.advance(out.ctypes.data, 7, 2)
    assert eng.step == 5
    with pytest.raises(ValueError, match=r"buffer has 3 elements for 2 groups"):
        eng.advance(out.ctypes.data, FLOAT64, 3)
    assert eng.step == 5 and out.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("make,match", [
    (lambda p: _core.HostEngine(p, np.zeros(2, dtype=np.int32), np.ones(1)), r"scale has 1 entries for 2 groups"),
    (lambda p: _core.HostEngine(p, np.zeros(0, dtype=np.int32), np.ones(0)), r"an engine needs at least one group"),
    (lambda p: _core.HostEngine(p, np.zeros(1, dtype=np.int32), np.array([math.nan])), r"scale of group 0 is not finite"),
    (lambda p: _core.HostEngine(p, np.zeros(1, dtype=np.int32), np.ones(1), -1), r"step must be >= 0, got -1"),
    (lambda p: _core.HostEngine(p, np.array([4], dtype=np.int32), np.ones(1)), r"root 4 out of range"),
])
def test_core_engine_rejects_bad_construction(make: Callable[[_core.Program], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(program([leaf(Code.CONSTANT, 1.0)]))


def test_core_engine_rejects_bad_updates() -> None:
    eng = _core_engine(2)
    with pytest.raises(ValueError, match=r"step must be >= 0, got -1"):
        eng.step = -1
    assert eng.step == 0
    with pytest.raises(ValueError, match=r"group 2 out of range"):
        eng.set_scale(2, 1.0)
    with pytest.raises(ValueError, match=r"scale of group 0 is not finite"):
        eng.set_scale(0, math.inf)
    with pytest.raises(ValueError, match=r"mirror needs one value per group"):
        eng.set_mirror(np.ones(3))


# ---- the Python Engine on CPU buffers --------------------------------------------------------------

SCHEDULES = [
    S.warmup(5) >> S.cosine(20, final=0.1),
    S.cyclic(0.1, 1.0, 3, 4, mode="triangular2"),
    S.multistep([3, 7], 0.5),
]


def _expected(schedules: list[S.Schedule], base: list[float], mult: list[float], steps: range) -> np.ndarray:
    return np.stack([b * m * s.values(steps) for s, b, m in zip(schedules, base, mult)], axis=1)


@pytest.mark.parametrize("kind", ["numpy64", "numpy32", "torch64", "torch32"])
def test_engine_advance_writes_every_group(kind: str) -> None:
    base, mult = [0.1, 2.0, 0.5], [1.0, 0.5, 3.0]
    eng = Engine(SCHEDULES, base, mult)
    assert isinstance(eng, Engine) and eng.groups == 3 and eng.step == 0
    out: Any = {"numpy64": np.zeros(3), "numpy32": np.zeros(3, np.float32),
                "torch64": torch.zeros(3, dtype=torch.float64), "torch32": torch.zeros(3)}[kind]
    expected = _expected(SCHEDULES, base, mult, range(40))
    eng.write(out)
    rows = [np.asarray(out, dtype=np.float64).copy()]
    for _ in range(39):
        assert eng.advance(out) is out
        rows.append(np.asarray(out, dtype=np.float64).copy())
        assert eng.lrs() == list(expected[eng.step])  # the float64 mirror, as Python floats
    got = np.array(rows)
    if kind.endswith("32"):
        assert np.array_equal(got, expected.astype(np.float32).astype(np.float64))  # rounded once, from float64
    else:
        assert np.array_equal(got, expected)
    assert eng.step == 39


def test_engine_one_schedule_for_all_groups_and_multipliers() -> None:
    sched = S.linear(10, init=1.0, final=0.0)
    eng = Engine(sched, [1.0, 0.1], multipliers=[1.0, 10.0], step=4)
    assert eng.lrs() == [sched(4), 0.1 * 10.0 * sched(4)]
    eng.set_multiplier(1, 2.0)
    eng.advance()
    assert eng.step == 5 and eng.lrs() == [sched(5), 0.1 * 2.0 * sched(5)]
    eng.step = 0
    assert eng.lrs() == [1.0, 0.2]


def test_engine_bound_buffer() -> None:
    eng = Engine(SCHEDULES[:2], [1.0, 1.0])
    buf = torch.zeros(2, dtype=torch.float64)
    eng.bind(buf)
    assert buf.tolist() == [SCHEDULES[0](0), SCHEDULES[1](0)]
    assert eng.advance() is buf
    assert buf.tolist() == [SCHEDULES[0](1), SCHEDULES[1](1)] == eng.lrs()


def test_engine_many_groups_in_one_call() -> None:
    # Above the GIL-release threshold, with per-group schedules drawn from three programs.
    groups = 5000
    scheds = [SCHEDULES[g % 3] for g in range(groups)]
    base = list(np.linspace(0.01, 1.0, groups))
    eng = Engine(scheds, base)
    out = np.zeros(groups, dtype=np.float32)
    for _ in range(6):
        eng.advance(out)
    expected = np.array([b * s(6) for s, b in zip(scheds, base)])
    assert np.array_equal(out, expected.astype(np.float32))
    assert np.array_equal(np.array(eng.lrs()), expected)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), start=st.integers(0, 50), k=st.integers(0, 30), data=st.data())
def test_engine_matches_values_from_any_start(n: int, start: int, k: int, data: st.DataObject) -> None:
    pool = SCHEDULES + [S.exponential(0.9, 3, staircase=True), S.interpolate({0: 0.0, 10: 1.0, 30: 0.2})]
    scheds = [data.draw(st.sampled_from(pool)) for _ in range(n)]
    base = data.draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n))
    eng = Engine(scheds, base, step=start)
    out = np.zeros(n)
    for _ in range(k):
        eng.advance(out)
    expected = [b * s(start + k) for s, b in zip(scheds, base)]
    assert eng.lrs() == expected
    if k:
        assert out.tolist() == expected


# ---- bad input to the Engine ------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: Engine(S.constant(), [-1.0]), ValueError, r"base_lrs\[0\] must be >= 0, got -1.0"),
    (lambda: Engine(S.constant(), [0.1, math.nan]), ValueError, r"base_lrs\[1\] must be finite, got nan"),
    (lambda: Engine(S.constant(), [math.inf]), ValueError, r"base_lrs\[0\] must be finite, got inf"),
    (lambda: Engine(S.constant(), ["0.1"]), TypeError, r"base_lrs\[0\] must be a real number, got '0.1'"),
    (lambda: Engine(S.constant(), []), ValueError, r"base_lrs must have at least one entry"),
    (lambda: Engine([S.constant()] * 3, [0.1, 0.2]), ValueError, r"got 3 schedules for 2 groups \(base_lrs\)"),
    (lambda: Engine([S.constant(), 0.5], [0.1, 0.2]), TypeError, r"schedules\[1\] must be a torchsched schedule"),
    (lambda: Engine(S.constant(), [0.1, 0.2], [1.0]), ValueError, r"multipliers has 1 entries for 2 groups"),
    (lambda: Engine(S.constant(), [0.1], [-2.0]), ValueError, r"multipliers\[0\] must be >= 0, got -2.0"),
    (lambda: Engine(S.constant(), [0.1], [math.nan]), ValueError, r"multipliers\[0\] must be finite, got nan"),
    (lambda: Engine(S.constant(), [0.1], step=-1), ValueError, r"step must be an integer >= 0, got -1"),
    (lambda: Engine(S.constant(), [0.1], step=1.5), ValueError, r"step must be an integer >= 0, got 1.5"),
])
def test_engine_rejects_bad_construction(make: Callable[[], Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        make()


def test_engine_rejects_a_negative_step_and_keeps_its_own() -> None:
    eng = Engine(S.step(2, 0.5), [1.0], step=3)
    with pytest.raises(ValueError, match=r"step must be an integer >= 0, got -1"):
        eng.step = -1
    assert eng.step == 3 and eng.lrs() == [0.5]
    with pytest.raises(ValueError, match=r"multipliers\[0\] must be >= 0, got -1"):
        eng.set_multiplier(0, -1)


BAD_BUFFERS: list[tuple[str, Callable[[], Any], type, str]] = [
    ("int32 array", lambda: np.zeros(2, dtype=np.int32), TypeError, r"out must be float32 or float64, got dtype int32"),
    ("float16 array", lambda: np.zeros(2, dtype=np.float16), TypeError, r"got dtype float16"),
    ("float16 tensor", lambda: torch.zeros(2, dtype=torch.float16), TypeError, r"got dtype torch.float16"),
    ("int64 tensor", lambda: torch.zeros(2, dtype=torch.int64), TypeError, r"got dtype torch.int64"),
    ("too short", lambda: np.zeros(1), ValueError, r"out has 1 elements, expected 2 \(one per group\)"),
    ("too long tensor", lambda: torch.zeros(3), ValueError, r"out has 3 elements, expected 2"),
    ("strided array", lambda: np.zeros(4)[::2], ValueError, r"out must be a writable C-contiguous array"),
    ("read-only array", lambda: _readonly(), ValueError, r"out must be a writable C-contiguous array"),
    ("strided tensor", lambda: torch.zeros(4)[::2], ValueError, r"out must be contiguous"),
    ("tensor that needs grad", lambda: torch.zeros(2, requires_grad=True), ValueError, r"out must not require grad"),
    ("a list", lambda: [0.0, 0.0], TypeError, r"out must be a numpy array or a CPU torch tensor, got list"),
]


def _readonly() -> np.ndarray:
    a = np.zeros(2)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("make,exc,match", [pytest.param(m, e, r, id=n) for n, m, e, r in BAD_BUFFERS])
def test_engine_rejects_bad_buffers_and_keeps_its_step(make: Callable[[], Any], exc: type, match: str) -> None:
    eng = Engine(S.linear(10), [1.0, 0.5], step=2)
    before = eng.lrs()
    with pytest.raises(exc, match=match):
        eng.advance(make())
    assert eng.step == 2 and eng.lrs() == before
    with pytest.raises(exc, match=match):
        eng.write(make())
    with pytest.raises(exc, match=match):
        eng.bind(make())
    assert eng.step == 2


# ---- bad input to schedules, at the layers a user reaches ------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: S.constant(-0.5), r"value must be >= 0, got -0.5"),
    (lambda: S.cosine(100, init=math.nan), r"init must be finite, got nan"),
    (lambda: S.linear(10, final=-1e-3), r"final must be >= 0, got -0.001"),
    (lambda: S.cyclic(-0.1, 1.0), r"base must be >= 0, got -0.1"),
    (lambda: S.one_cycle(100, max=-1.0), r"max must be >= 0, got -1.0"),
    (lambda: S.piecewise_constant([10], [1.0, math.nan]), r"values\[1\] must be finite, got nan"),
    (lambda: S.interpolate({0: 1.0, 10: -1.0}), r"points\[10\] must be >= 0, got -1.0"),
    (lambda: S.cosine(0), r"steps must be > 0, got 0"),
    (lambda: S.warmup(-3), r"steps must be > 0, got -3"),
    (lambda: S.polynomial(0.0), r"steps must be > 0, got 0.0"),
    (lambda: S.cosine_restarts(0), r"period must be > 0, got 0"),
    (lambda: S.inverse_sqrt(0), r"timescale must be > 0, got 0"),
    (lambda: S.tanh(-1), r"steps must be > 0, got -1"),
    (lambda: S.one_cycle(0), r"total_steps must be > 0, got 0"),
    (lambda: S.warmup_stable_decay(10, 10, 0), r"steps must be > 0, got 0"),
    (lambda: S.piecewise_constant([30, 10], [1.0, 0.1, 0.01]), r"boundaries must be sorted, got \[30, 10\]"),
    (lambda: S.sequence([S.constant(), S.constant(), S.constant()], [30, 10]), r"boundaries must be sorted"),
    (lambda: S.interpolate([(10, 1.0), (0, 2.0)]), r"points \(steps\) must be sorted and distinct, got \[10, 0\]"),
])
def test_schedule_bad_input_names_argument_and_value(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_unsorted_milestones_are_sorted_as_torch_does() -> None:
    # torch MultiStepLR takes milestones in any order (it counts them); multistep() does the same, while
    # the tables that need an order (piecewise_constant, sequence, the core) reject an unsorted one above.
    assert np.array_equal(S.multistep([30, 10, 20], 0.5).values(range(40)), S.multistep([10, 20, 30], 0.5).values(range(40)))


def test_steps_before_zero_are_rejected_everywhere() -> None:
    sched = S.cosine(10)
    with pytest.raises(ValueError, match=r"step must be an integer >= 0, got -1"):
        sched(-1)
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -1"):
        sched.values([-1])
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -3"):
        sched.values(range(-3, 5))
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -7"):
        sched.values(np.array([3, -7, 2]))
    eng = Engine(sched, [1.0])
    with pytest.raises(ValueError, match=r"step must be an integer >= 0, got -1"):
        eng.step = -1
    assert eng.step == 0


def test_compile_many_shares_one_tree_per_schedule() -> None:
    a, b = S.cosine(10), S.linear(5)
    prog, roots = compile_many([a, b, a, a])
    assert roots.dtype == np.int32 and roots.tolist() == [0, 1, 0, 0]
    assert prog.size == 2
    assert prog.value(int(roots[1]), 2) == b(2)


@pytest.mark.parametrize(
    "code, index",
    [(Code.STEP, 1), (Code.COSINE, 2), (Code.WARMUP, 2), (Code.CYCLIC, 2), (Code.COSINE_RESTARTS, 3),
     (Code.INVERSE_SQRT, 1), (Code.TANH, 2), (Code.TORCH_COSINE, 2)],
)
def test_raw_tables_reject_a_zero_period(code: int, index: int) -> None:
    p = [1.0] * 8
    p[index] = 0.0
    with pytest.raises(ValueError, match=rf"parameter {index} .* must be > 0"):
        program([leaf(code, *p)])


def test_overflow_raises_instead_of_an_infinite_lr() -> None:
    growth = S.exponential(10.0)
    assert math.isfinite(growth(300))
    with pytest.raises(ValueError, match="not finite at step 1000"):
        growth.values([1000])
    engine = Engine(growth, [1.0])
    engine.step = 300
    with pytest.raises(ValueError, match="group 0 is not finite at step 301 in float32"):
        engine.advance(np.zeros(1, dtype=np.float32))
    assert engine.step == 300  # the failed call did not move the schedule
    engine.advance(np.zeros(1, dtype=np.float64))  # 1e301 still fits a float64 buffer
    assert engine.step == 301


# ---- the core's cosine ---------------------------------------------------------------------------

def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between float64 arrays of one sign pattern."""
    ia, ib = a.view(np.int64).astype(object), b.view(np.int64).astype(object)
    return np.array([abs(x - y) for x, y in zip(ia, ib)])


def test_core_cos_is_within_one_ulp_of_libm() -> None:
    rng = np.random.default_rng(7)
    xs = np.concatenate([
        rng.uniform(-60.0, 60.0, 100_000),
        math.pi * rng.integers(0, 10_000, 20_000) / rng.integers(1, 10_000, 20_000),  # schedule arguments
        np.array([k * math.pi / 2 for k in range(-40, 41)]),  # next to the zeros, where reduction matters
        np.array([0.0, -0.0, 1e-300, 5e-324, math.pi, 1e5, -7.5e8]),
    ])
    ours, ref = _core.cos(xs), np.array([math.cos(x) for x in xs])
    assert np.all(np.sign(ours) == np.sign(ref))
    ulps = _ulps(ours, ref)
    assert ulps.max() <= 1, f"worst {ulps.max()} ulp at x={xs[int(np.argmax(ulps))]!r}"
    same = float(np.mean(ulps == 0))
    print(f"\ncore cos equals the C library's on {same:.1%} of {xs.size} arguments, worst {ulps.max()} ulp")
    assert same > 0.9  # and equal to the C library's result nearly always


def test_core_cos_near_pi_keeps_the_cosine_tail_exact() -> None:
    # 1 + cos(x) near x = pi is where a cosine schedule ends: an ulp there is a large relative error of
    # the LR, so the reduction must make these agree with the correctly rounded value.
    for T in (10, 1000, 99_991, 10**6):
        xs = np.array([math.pi * t / T for t in range(max(0, T - 200), T + 1)])
        ours, ref = 1.0 + _core.cos(xs), np.array([1.0 + math.cos(x) for x in xs])
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)


def test_core_cos_hands_huge_arguments_to_the_c_library() -> None:
    # Past 2^29 pi/2 the reduction would lose exactness, so the platform's cos takes over there, in the
    # scalar path and in the vectorized one alike.
    limit = 2.0**29 * (math.pi / 2)
    xs = np.array([limit * 0.999, limit * 1.001, -3e12, 1e300])
    assert np.array_equal(_core.cos(xs[1:]), [math.cos(x) for x in xs[1:]])
    assert abs(_core.cos(xs[:1])[0] - math.cos(xs[0])) <= 2e-16
    far = S.cosine(1, clamp=False, final=0.25)
    steps = [0, 3, 2**28 + 1, 2**40, 2**40 + 7]
    expected = [far(t) for t in steps]
    assert np.array_equal(far.values(steps), expected) and np.all(np.isfinite(expected))
    assert far(2**40) == 0.25 + 0.75 * 0.5 * (1.0 + math.cos(math.pi * (2**40 / 1.0)))
    assert np.array_equal(far.values(range(2**40, 2**40 + 600)), [far(t) for t in range(2**40, 2**40 + 600)])


# ---- values() over sorted steps: the block path equals evaluate() bit for bit -------------------

_leaves = st.sampled_from([
    lambda: S.warmup(7),
    lambda: S.warmup(5, init=0.1, shape="exponential"),
    lambda: S.cosine(40, final=0.01),
    lambda: S.cosine(33, final=0.2, exponent=2.0, k=0.5),
    lambda: S.cosine(25, cycles=1.5, clamp=False),
    lambda: S.anneal(30, start=1.0, end=0.1, shape="cosine"),
    lambda: S.anneal(30, start=1.0, end=0.1),
    lambda: S.anneal(12, start=1.0, end=0.1, shape="1-sqrt"),
    lambda: S.step(init=0.5, step_size=9, gamma=0.5),
    lambda: S.constant(0.3),
    lambda: S.cosine_restarts(11, period_mult=1.5, decay=0.8),
    lambda: S.inverse_sqrt(timescale=10),
])


@st.composite
def _programs(draw: Any, depth: int = 0) -> S.Schedule:
    if depth >= 3 or draw(st.booleans()):
        return draw(_leaves)()
    kind = draw(st.sampled_from(["sequence", "product", "scale", "shift"]))
    if kind == "scale":
        return S.scale(draw(_programs(depth + 1)), draw(st.floats(0.0, 3.0)))
    if kind == "shift":
        return S.shift(draw(_programs(depth + 1)), draw(st.integers(0, 50)))
    parts = [draw(_programs(depth + 1)) for _ in range(draw(st.integers(2, 3)))]
    if kind == "product":
        return S.product(*parts)
    bounds = sorted(draw(st.lists(st.integers(0, 300) | st.floats(0.0, 300.0), min_size=len(parts) - 1,
                                  max_size=len(parts) - 1)))
    return S.sequence(parts, bounds)


@settings(max_examples=150, deadline=None)
@given(sched=_programs(), start=st.integers(0, 400), n=st.integers(0, 700), stride=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_sorted_values_equal_one_step_at_a_time(sched: S.Schedule, start: int, n: int, stride: int, seed: int) -> None:
    steps = range(start, start + n * stride, stride)
    one_by_one = np.array([sched(t) for t in steps], dtype=np.float64)
    assert np.array_equal(sched.values(steps), one_by_one)                    # range: no step array
    assert np.array_equal(sched.values(np.asarray(steps, dtype=np.int64)), one_by_one)  # sorted array
    shuffled = np.random.default_rng(seed).permutation(np.asarray(steps, dtype=np.int64))
    expected = np.array([sched(int(t)) for t in shuffled], dtype=np.float64)
    assert np.array_equal(sched.values(shuffled), expected)                  # unsorted: per step


def test_sorted_values_across_threads_and_blocks() -> None:
    # 300 000 steps are split over threads and 256-step blocks; pieces switch inside blocks.
    sched = S.warmup(1000) >> S.cosine(299_000 - 3, final=0.01) >> S.constant(0.01)
    steps = range(0, 300_000)
    vals = sched.values(steps)
    probe = list(range(0, 300_000, 997)) + [999, 1000, 1001, 298_996, 298_997, 298_998, 299_999]
    assert np.array_equal(vals[probe], [sched(t) for t in probe])
    assert np.array_equal(sched.values(range(5, 300_000, 3)), vals[5::3])
    with pytest.raises(ValueError, match=">= 0"):
        sched.values(range(-1, 10))


def test_values_of_a_range_check_their_bounds() -> None:
    sched = S.warmup(10) >> S.cosine(100)
    assert sched.values(range(5, 5)).shape == (0,) and sched.values(range(10, 0)).shape == (0,)
    top = sched.values(range(2**63 - 3, 2**63))  # the last int64 step is allowed
    assert top.shape == (3,) and np.all(top == sched(2**63 - 1))
    for bad, match in [(range(-2, 3), ">= 0, got -2"), (range(2**63, 2**63 + 2), f"< 2\\*\\*63, got {2**63 + 1}"),
                       (range(0, 2**64, 2**62), "< 2\\*\\*63, got 13835058055282163712")]:
        with pytest.raises(ValueError, match="steps must be " + match):
            sched.values(bad)
    prog = sched._program()
    for args, match in [((0, -1, 1, 1), "steps must be >= 0"), ((0, 0, 0, 1), "stride must be >= 1"),
                        ((0, 0, 1, -1), "count must be >= 0"), ((0, 2**62, 2**62, 3), "does not fit in int64"),
                        ((1, 0, 1, 1), "root")]:
        with pytest.raises(ValueError, match=match):
            prog.values_range(*args)
    # a range with a negative stride takes the array path
    assert np.array_equal(sched.values(range(50, 0, -7)), [sched(t) for t in range(50, 0, -7)])
