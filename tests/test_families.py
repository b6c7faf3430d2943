"""The families table (cpp/include/torchsched/families.def, exported as ``_core.FAMILIES``): Python's op
codes and derived sets come from it, and the core's validator and dispatch follow its columns. Then REX,
the family added through one row of the table, against its published formula."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest

from torchsched import _core, _cuda
from torchsched import schedules as S
from torchsched._engine import Engine
from torchsched._program import CHAINABLE_CODES, FAMILIES, NUM_PARAMS, OP_DTYPE, Code, Family, compile_many

KINDS = {"native", "signal", "chainable", "torch", "combinator"}
TABLES = {"none", "sorted", "steps", "points"}
LEAVES = [f for f in FAMILIES if f.kind != "combinator"]


def _bits(mask: int) -> list[int]:
    return [k for k in range(NUM_PARAMS) if (mask >> k) & 1]


# ---- the two sides agree ----------------------------------------------------------------------------

def test_python_reads_every_row_of_the_core() -> None:
    assert Family._fields == _core.FAMILY_FIELDS
    assert len(FAMILIES) == len(_core.FAMILIES)
    for row, family in zip(_core.FAMILIES, FAMILIES):
        assert tuple(family) == row
        assert Code[family.code_name] == family.code
        assert isinstance(family.params, tuple) and all(isinstance(n, str) and n for n in family.params)


def test_every_code_has_a_row_and_every_row_a_code() -> None:
    assert {c.name: int(c) for c in Code} == {f.code_name: f.code for f in FAMILIES}
    assert len(Code) == len(FAMILIES)


def test_codes_and_names_are_unique() -> None:
    for column in ("code", "code_name", "name"):
        values = [getattr(f, column) for f in FAMILIES]
        assert len(values) == len(set(values)), column


def test_columns_hold_what_the_table_promises() -> None:
    for f in FAMILIES:
        assert f.kind in KINDS and f.table in TABLES, f
        assert len(f.params) <= NUM_PARAMS, f
        for column in ("positive", "integer", "optional", "per_group"):
            assert 0 <= getattr(f, column) < 2 ** len(f.params), (f.code_name, column)
        assert f.chains == (f.kind == "chainable"), f
        assert not f.torch_split or f.kind in ("chainable", "torch"), f
        assert f.torch_split or f.kind != "chainable", f
        assert f.per_group == 0 or f.torch_split, f
        assert f.table == "none" or f.kind != "combinator", f
    # Leaves come first: the core tells a leaf by its code being below every combinator's.
    assert max(f.code for f in LEAVES) < min(f.code for f in FAMILIES if f.kind == "combinator")


def test_the_table_keeps_the_facts_the_code_held_before_it() -> None:
    """The masks and sets each hand-written copy held, so that a row edited by mistake fails here."""
    positive = {f.code_name: _bits(f.positive) for f in FAMILIES if f.positive}
    assert positive == {
        "STEP": [1], "EXPONENTIAL": [2], "POLYNOMIAL": [2, 5], "INVERSE_TIME": [2], "INVERSE_POWER": [1],
        "INVERSE_SQRT": [1], "COSINE": [2, 6], "COSINE_RESTARTS": [2, 3, 7], "CYCLIC": [2, 3], "WARMUP": [2],
        "ANNEAL": [2], "TANH": [2], "REX": [2], "TORCH_COSINE": [2],
    }
    assert {f.code_name: _bits(f.optional) for f in FAMILIES if f.optional} == {"EXPONENTIAL": [5]}
    assert {f.code_name: _bits(f.per_group) for f in FAMILIES if f.per_group} == {
        "TORCH_COSINE": [0], "TORCH_SWA": [0], "TORCH_CYCLIC": [0, 1], "TORCH_ONE_CYCLE": [5, 6, 7]}
    assert CHAINABLE_CODES == set(range(20, 28))
    assert {f.code for f in FAMILIES if f.torch_split} == set(range(20, 28)) | {35, 36}
    assert {f.code_name: f.table for f in FAMILIES if f.table != "none"} == {
        "PIECEWISE_CONST": "steps", "INTERP": "points", "TORCH_MULTISTEP": "sorted"}
    assert {f.code for f in LEAVES} == set(range(0, 17)) | set(range(20, 37))
    assert {f.code_name for f in FAMILIES if f.kind == "signal"} == {"SIGNAL"}
    assert {f.code for f in FAMILIES if f.kind == "combinator"} == {40, 41, 42, 43}


def test_derived_sets() -> None:
    assert CHAINABLE_CODES == {f.code for f in FAMILIES if f.kind == "chainable"}
    assert _cuda._CHAINABLE_CODES is CHAINABLE_CODES


# ---- the core follows the table ---------------------------------------------------------------------

# A table each table layout accepts, for a leaf whose b is 1.
_TABLE_FOR = {"none": [], "sorted": [0.0], "steps": [1.0, 2.0, 3.0], "points": [0.0, 1.0]}


def _leaf_program(f: Family, p: list[float]) -> _core.Program:
    records = np.zeros(1, dtype=OP_DTYPE)
    aux = _TABLE_FOR[f.table]
    records[0] = (f.code, 1, 0, 1 if aux else 0, tuple(p))
    return _core.Program(records, np.asarray(aux, dtype=np.float64))


def _valid_params() -> list[float]:
    return [1.0 + 0.5 * k for k in range(NUM_PARAMS)]  # > 0 everywhere, distinct, small


@pytest.mark.parametrize("f", LEAVES, ids=lambda f: f.code_name)
def test_validation_follows_the_masks(f: Family) -> None:
    _leaf_program(f, _valid_params())  # the baseline is accepted
    for k in range(NUM_PARAMS):
        for bad in (0.0, -1.0):
            p = _valid_params()
            p[k] = bad
            if f.code_name == "SIGNAL" and k == 0:  # a slot: a column of the factor table
                if bad < 0:
                    with pytest.raises(ValueError, match="signal slot must be a whole number"):
                        _leaf_program(f, p)
                else:
                    _leaf_program(f, p)
            elif (f.positive >> k) & 1:
                with pytest.raises(ValueError, match=rf"parameter {k} \({f.params[k]}, .*must be > 0, got"):
                    _leaf_program(f, p)
            else:
                _leaf_program(f, p)
        p = _valid_params()
        p[k] = math.inf
        with pytest.raises(ValueError, match=rf"parameter {k} is not finite"):
            _leaf_program(f, p)
        p[k] = math.nan
        if (f.optional >> k) & 1:
            _leaf_program(f, p)
        else:
            with pytest.raises(ValueError, match=rf"parameter {k} is not finite"):
                _leaf_program(f, p)


def test_codes_outside_the_table_are_refused() -> None:
    known = {f.code for f in FAMILIES}
    for code in range(-3, max(known) + 5):
        if code in known:
            continue
        records = np.zeros(1, dtype=OP_DTYPE)
        records[0] = (code, 1, 0, 0, (1.0,) * NUM_PARAMS)
        with pytest.raises(ValueError, match=rf"unknown op code {code}$"):
            _core.Program(records, np.zeros(0))


@pytest.mark.parametrize("f", [f for f in FAMILIES if f.table != "none"], ids=lambda f: f.code_name)
def test_table_layouts_are_checked(f: Family) -> None:
    b = 2
    need = {"sorted": b, "steps": 2 * b + 1, "points": 2 * b}[f.table]
    records = np.zeros(1, dtype=OP_DTYPE)
    records[0] = (f.code, 1, 0, b, tuple(_valid_params()))
    _core.Program(records, np.arange(need, dtype=np.float64))
    with pytest.raises(ValueError, match="table out of bounds"):
        _core.Program(records, np.arange(need - 1, dtype=np.float64))


@pytest.mark.parametrize("f", [f for f in LEAVES if f.kind in ("native", "chainable")], ids=lambda f: f.code_name)
def test_chainable_rows_read_the_previous_lr_and_native_rows_do_not(f: Family) -> None:
    prog = _leaf_program(f, _valid_params())
    differs = [prog.value(0, t, 1.0) != prog.value(0, t, 3.0) for t in range(6)]
    assert any(differs) == f.chains, differs


# ---- the builders follow the table ------------------------------------------------------------------

# Every native family built with its options set away from the defaults.
BUILT: dict[str, list[S.Schedule]] = {
    "constant": [S.constant(2.0)],
    "step": [S.step(3, 0.5, init=2.0)],
    "piecewise_constant": [S.piecewise_constant([2], [1.0, 2.0], switch_after=True), S.piecewise_constant([], [1.0])],
    "exponential": [S.exponential(0.5, 2, begin=3, staircase=True, bound=0.1), S.exponential(0.9)],
    "polynomial": [S.polynomial(10, cycle=True, k=2.0, power=2.0, final=0.1), S.polynomial(10)],
    "inverse_time": [S.inverse_time(0.5, 2, staircase=True)],
    "inverse_power": [S.inverse_power(3, 0.5)],
    "inverse_sqrt": [S.inverse_sqrt(4)],
    "cosine": [S.cosine(10, clamp=False, k=2.0, exponent=2.0, cycles=1.5, final=0.1), S.cosine(10)],
    "cosine_restarts": [S.cosine_restarts(5, limit=3, decay_mode="swing", k=2.0, period_mult=2.0, decay=0.5)],
    "cyclic": [S.cyclic(0.1, 1.0, 4, 6, mode="exp_range", gamma=0.9), S.cyclic(0.1, 1.0, mode="triangular2")],
    "warmup": [S.warmup(5, init=0.1, shape="exponential"), S.warmup(5, shape="constant")],
    "anneal": [S.anneal(5, shape="1-sqrt"), S.anneal(5, shape="cosine")],
    "interpolate": [S.interpolate({0: 1.0, 5: 2.0}, kind="cosine")],
    "tanh": [S.tanh(10, lb=-3.0, ub=2.0)],
    "rex": [S.rex(10, init=2.0, final=0.5)],
}


def test_every_native_family_has_a_builder_of_its_name() -> None:
    assert set(BUILT) == {f.name for f in FAMILIES if f.kind == "native"}
    for f in FAMILIES:
        if f.kind in ("native", "combinator"):
            assert callable(getattr(S, f.name)), f.name
            assert f.name in S.__all__, f.name


@pytest.mark.parametrize("name", sorted(BUILT))
def test_builders_emit_what_the_row_describes(name: str) -> None:
    family = next(f for f in FAMILIES if f.name == name)
    for sched in BUILT[name]:
        prog, _ = compile_many([sched])
        (record,) = np.frombuffer(prog.op_bytes(), dtype=OP_DTYPE)
        assert record["code"] == family.code
        p = record["p"]
        assert not p[len(family.params):].any(), f"{sched!r} sets a parameter its row does not name"
        for k in _bits(family.integer):
            assert p[k] == math.floor(p[k]), f"{sched!r}: {family.params[k]} = {p[k]} is not a whole number"


@pytest.mark.parametrize("name", sorted(BUILT))
def test_block_loops_equal_one_step_at_a_time(name: str) -> None:
    """values() runs each family as one loop over a block of steps (generated from the table); every
    element is still the scalar formula's bits, across blocks, pieces and threads."""
    for sched in BUILT[name]:
        for composed in (sched, S.warmup(3) >> sched, S.product(sched, S.linear(400, final=0.5))):
            steps = np.arange(0, 1200, dtype=np.int64)
            expected = [composed(int(t)) for t in steps]
            assert composed.values(steps).tolist() == expected, repr(composed)
            assert composed.values(range(0, 1200)).tolist() == expected, repr(composed)
    big = BUILT[name][0]
    steps = np.arange(0, 300_000, dtype=np.int64)
    probe = steps[::7919]
    assert big.values(steps)[probe].tolist() == [big(int(t)) for t in probe]


# ---- REX: the family added through one row ---------------------------------------------------------

def rex_reference(t: np.ndarray, steps: float, init: float, final: float) -> np.ndarray:
    """The published formula in float64 numpy, with the decay held at ``final`` from ``steps`` on."""
    z = 1.0 - np.minimum(t.astype(np.float64), steps) / steps
    return final + (init - final) * z / (0.5 + 0.5 * z)


@pytest.mark.parametrize("steps, init, final", [
    (100, 1.0, 0.0), (1000, 3e-4, 1e-6), (7.5, 2.0, 0.5), (1, 1.0, 0.0), (37, 0.1, 0.9), (12345, 1.0, 0.25),
])
def test_rex_matches_the_published_formula(steps: float, init: float, final: float) -> None:
    t = np.unique(np.concatenate([np.arange(0, int(3 * steps) + 3), np.linspace(0, 5 * steps, 997).astype(np.int64)]))
    sched = S.rex(steps, init=init, final=final)
    ours = sched.values(t)
    np.testing.assert_allclose(ours, rex_reference(t, steps, init, final), rtol=1e-14, atol=1e-16)
    # Each step on its own (the scalar walk) and the vectorized block give the same bits.
    some = t[:: max(1, len(t) // 50)]
    assert [sched(int(s)) for s in some] == ours[np.searchsorted(t, some)].tolist()


def test_rex_is_the_papers_schedule() -> None:
    """The paper writes it as lr_0 (1 - t/T) / (1/2 + 1/2 (1 - t/T)), down to 0 at T."""
    T = 50
    t = np.arange(T + 1, dtype=np.float64)
    paper = 0.3 * (1 - t / T) / (0.5 + 0.5 * (1 - t / T))
    np.testing.assert_allclose(S.rex(T, init=0.3).values(range(T + 1)), paper, rtol=1e-15, atol=1e-17)
    linear = S.linear(T, init=0.3).values(range(T + 1))
    inside = slice(1, T)
    assert np.all(S.rex(T, init=0.3).values(range(T + 1))[inside] > linear[inside])  # above linear inside
    assert np.all(np.diff(paper) < 0)


@pytest.mark.parametrize("steps", [10, 7.5, 1, 333])
def test_rex_endpoints(steps: float) -> None:
    sched = S.rex(steps, init=0.7, final=0.1)
    assert sched(0) == 0.7  # exactly init
    end = math.ceil(steps)
    if end == steps:
        assert sched(end) == 0.1  # exactly final at T ...
    assert sched.values([end, end + 1, end + 1000, 10**12]).tolist() == [0.1] * 4  # ... and after it
    assert sched.duration == float(steps)


def test_rex_composes() -> None:
    warm, decay = S.warmup(5, init=0.0), S.rex(20, init=1.0, final=0.1)
    joined = warm >> decay
    assert joined.duration == 25.0
    t = np.arange(40)
    expected = np.where(t < 5, warm.values(t), decay.values(np.maximum(t - 5, 0)))
    assert joined.values(t).tolist() == expected.tolist()
    assert joined == S.sequence([warm, decay], [5])
    half = S.constant(0.5) * decay
    assert half.values(t).tolist() == (0.5 * decay.values(t)).tolist()
    assert (2.0 * decay).values(t).tolist() == (2.0 * decay.values(t)).tolist()
    assert repr(decay) == "rex(steps=20, init=1.0, final=0.1)"
    assert eval(repr(decay), {"rex": S.rex}) == decay  # noqa: S307 - our own repr


def test_rex_in_an_engine_of_several_groups() -> None:
    eng = Engine(S.rex(10), [1.0, 0.5])
    out = np.zeros(2, dtype=np.float64)
    for step in range(1, 12):
        eng.advance(out)
        assert out.tolist() == [S.rex(10)(step), 0.5 * S.rex(10)(step)]


@pytest.mark.parametrize("call, error, match", [
    (lambda: S.rex(0), ValueError, r"steps must be > 0, got 0"),
    (lambda: S.rex(-3), ValueError, r"steps must be > 0, got -3"),
    (lambda: S.rex(math.inf), ValueError, r"steps must be finite, got inf"),
    (lambda: S.rex(10, init=-1.0), ValueError, r"init must be >= 0, got -1.0"),
    (lambda: S.rex(10, final=math.nan), ValueError, r"final must be finite, got nan"),
    (lambda: S.rex("10"), TypeError, r"steps must be a real number, got '10'"),
    (lambda: S.rex(10, init=True), TypeError, r"init must be a real number, got True"),
])
def test_rex_argument_checks(call: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_the_core_refuses_a_rex_without_steps() -> None:
    records = np.zeros(1, dtype=OP_DTYPE)
    records[0] = (Code.REX, 1, 0, 0, (1.0, 0.0, 0.0) + (0.0,) * (NUM_PARAMS - 3))
    with pytest.raises(ValueError, match=r"parameter 2 \(steps, a period or step count\) must be > 0"):
        _core.Program(records, np.zeros(0))
