"""The behaviours of torch's schedulers that changed between the releases the package supports (torch>=2.4), each
compared with the installed torch directly: whichever torch runs these tests is the oracle, and no expected value
is written down for one version. ``make test-torch-range`` runs them under the floor, a middle and the newest
release (torchsched._torch_compat says which behaviour the installed torch has)."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import pytest
import torch
from torch.optim import lr_scheduler as tl
from torch.optim import swa_utils

from torchsched import lr_scheduler as ts

SIDES = ((tl, swa_utils.SWALR), (ts, ts.SWALR))


def _opt(lr_type: str, lrs: tuple[float, ...] = (0.1, 0.25)) -> torch.optim.Optimizer:
    groups = []
    for lr in lrs:
        value: Any = lr if lr_type == "float" else torch.tensor(lr, dtype=torch.float64)
        groups.append({"params": [torch.nn.Parameter(torch.ones(2))], "lr": value})
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _group_state(opt: torch.optim.Optimizer) -> list[tuple[float, float]]:
    return [(float(g["lr"]), float(g.get("initial_lr", float("nan")))) for g in opt.param_groups]


BUILDERS: dict[str, Callable[[Any, Any, torch.optim.Optimizer], Any]] = {
    "ExponentialLR": lambda M, swa, o: M.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda M, swa, o: M.PolynomialLR(o, 7, 2.0),
    "CosineAnnealingLR": lambda M, swa, o: M.CosineAnnealingLR(o, 9, 1e-3),
    "LinearLR": lambda M, swa, o: M.LinearLR(o, 0.5, 1.0, 6),
    "MultiplicativeLR": lambda M, swa, o: M.MultiplicativeLR(o, lambda e: 0.95),
    "LambdaLR": lambda M, swa, o: M.LambdaLR(o, lambda e: 1.0 / (e + 1)),
    "StepLR": lambda M, swa, o: M.StepLR(o, 3, 0.5),
    "ConstantLR": lambda M, swa, o: M.ConstantLR(o, 0.5, 4),
    "CyclicLR": lambda M, swa, o: M.CyclicLR(o, 0.01, 0.2, step_size_up=3, cycle_momentum=False),
    "OneCycleLR": lambda M, swa, o: M.OneCycleLR(o, 0.5, total_steps=40),
    "SWALR-cos": lambda M, swa, o: swa(o, swa_lr=0.05, anneal_epochs=5, anneal_strategy="cos"),
    "SWALR-linear": lambda M, swa, o: swa(o, swa_lr=0.05, anneal_epochs=5, anneal_strategy="linear"),
    "SequentialLR": lambda M, swa, o: M.SequentialLR(o, [M.ExponentialLR(o, 0.99), M.StepLR(o, 3, 0.5)], [5]),
    "ChainedScheduler": lambda M, swa, o: M.ChainedScheduler([M.ExponentialLR(o, 0.99), M.StepLR(o, 3, 0.5)]),
}


def _run(name: str, lr_type: str, companion: bool, steps: int = 30) -> list[Any]:
    """What a user sees of one scheduler (and a second one on its optimizer): LRs, get_last_lr(), state keys."""
    trace = []
    for M, swa in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt(lr_type)
            s = BUILDERS[name](M, swa, o)
            other = M.ExponentialLR(o, 0.5) if companion else None
            seen = [(_group_state(o), _floats(s.get_last_lr()), sorted(s.state_dict()))]
            for _ in range(steps):
                o.step()
                s.step()
                if other is not None:
                    other.step()
                seen.append((_group_state(o), _floats(s.get_last_lr()), getattr(s, "last_epoch", None)))
        trace.append(seen)
    return trace


@pytest.mark.parametrize("companion", [False, True], ids=["alone", "with-a-second-scheduler"])
@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_lrs_last_lr_and_state_keys_follow_the_installed_torch(name: str, lr_type: str, companion: bool) -> None:
    # _is_initial in state_dict, get_last_lr() aliasing tensor LRs, SequentialLR's initial_lr and milestone step,
    # SWALR's anneal strategy: all as the installed torch has them
    torch_side, ours = _run(name, lr_type, companion)
    assert ours == torch_side


@pytest.mark.parametrize("name", ["ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "MultiplicativeLR",
                                  "LinearLR"])
def test_a_schedule_restarted_at_last_epoch_minus_one_follows_torch(name: str) -> None:
    # older torch keeps the LR wherever last_epoch reaches 0; newer torch only in the constructor's step
    got = []
    for M, swa in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt("float")
            s = BUILDERS[name](M, swa, o)
            for _ in range(3):
                o.step()
                s.step()
            state = s.state_dict()
            state["last_epoch"] = -1
            s.load_state_dict(state)
            seen = []
            for _ in range(4):
                o.step()
                s.step()
                seen.append(_floats(g["lr"] for g in o.param_groups))
        got.append(seen)
    assert got[0] == got[1]


def _warnings_of(fn: Callable[[], Any]) -> list[tuple[Any, str, str]]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [(x.category, str(x.message), x.filename) for x in w]


def test_step_warnings_name_the_line_the_installed_torch_names() -> None:
    # newer torch names the caller of step(); older torch its own line
    got = []
    for M, _ in SIDES:
        o = _opt("float")
        s = M.StepLR(o, 2)
        early = _warnings_of(lambda: s.step())
        o.step()
        epoch = _warnings_of(lambda: s.step(4))
        got.append((early, epoch))
    assert got[0] == got[1] and got[0][0] and got[0][1]


def test_isinstance_relations_hold() -> None:
    for M, swa in SIDES:
        o = _opt("float")
        s = BUILDERS["StepLR"](M, swa, o)
        assert isinstance(s, tl.LRScheduler) and isinstance(s, tl.StepLR)
    assert isinstance(ts.SWALR(_opt("float"), swa_lr=0.05), swa_utils.SWALR)


def test_plateau_epoch_warning_names_the_line_the_installed_torch_names() -> None:
    # ReduceLROnPlateau's own step() warns: from its own line on older torch, naming the caller on newer
    got = []
    for M, _ in SIDES:
        s = M.ReduceLROnPlateau(_opt("float"))
        got.append(_warnings_of(lambda: s.step(1.0, 4)))
    assert got[0] == got[1] and got[0]


@pytest.mark.parametrize("min_lr", [[0.0], 1e-3, "reassigned"])
def test_plateau_with_a_param_group_added_follows_torch(min_lr: Any) -> None:
    # newer torch fills min_lrs from a scalar min_lr, else raises RuntimeError; older torch indexes min_lrs group
    # by group (IndexError past its end, after reducing the groups before it; a longer list is fine)
    got = []
    for M, _ in SIDES:
        o = _opt("float", (0.1,))
        s = M.ReduceLROnPlateau(o, patience=0, min_lr=[0.0] if min_lr == "reassigned" else min_lr)
        s.step(1.0)
        o.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.07})
        if min_lr == "reassigned":
            s.min_lrs = [0.0, 1e-3, 0.0]
        seen = []
        for metric in (2.0, 3.0, 0.5, 4.0):
            try:
                s.step(metric)
                error = None
            except Exception as e:  # noqa: BLE001 - the type is compared with torch's
                error = type(e)
            seen.append((error, _floats(g["lr"] for g in o.param_groups), s.num_bad_epochs, s.cooldown_counter,
                         s.last_epoch))
        got.append((seen, sorted(s.state_dict())))
    assert got[0] == got[1]


def _state_values(state: Any) -> Any:
    """A state dict's numbers as floats (tensors by value), its structure as is."""
    if isinstance(state, dict):
        return {k: _state_values(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_state_values(v) for v in state]
    if isinstance(state, torch.Tensor):
        return ("tensor", state.dtype, float(state))
    return state if isinstance(state, (int, float, str, bool, type(None))) else type(state).__name__


@pytest.mark.parametrize("lr_type", ["float", "f64"])
def test_sequentiallr_state_follows_torch(lr_type: str) -> None:
    # older torch: each scheduler's _last_lr holds the tensors it wrote, which SequentialLR's reset leaves
    # outside the groups (and its own steps keep writing); newer torch holds clones
    got = []
    for M, _ in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt(lr_type, (0.1,))
            s = M.SequentialLR(o, [M.ConstantLR(o, 0.5, 3), M.LinearLR(o, 0.1, 1.0, 4), M.ExponentialLR(o, 0.9)],
                               [5, 9])
            seen = [_state_values(s.state_dict())]
            for _ in range(12):
                o.step()
                s.step()
                seen.append(_state_values(s.state_dict()))
        got.append(seen)
    assert got[0] == got[1]


@pytest.mark.parametrize("name", ["SequentialLR", "LambdaLR"])
def test_a_live_state_dict_loaded_as_is_follows_torch(name: str) -> None:
    # a state dict loaded without a copy shares its base LR tensors with the scheduler it came from; on older torch
    # SequentialLR makes them the groups' LR tensors, which that scheduler's steps keep changing
    def build(M: Any, o: Any) -> Any:
        if name == "LambdaLR":
            s = M.LambdaLR(o, lambda e: 0.9 ** e)
            o.param_groups[0]["lr"] = o.param_groups[0]["initial_lr"]  # the base LR tensor is the group's LR
            return s
        return M.SequentialLR(o, [M.LambdaLR(o, lambda e: 1.02 ** e), M.CosineAnnealingLR(o, 20)], [8])

    runs = []
    for M, _ in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt("f64", (0.1,))
            s = build(tl, o)  # the source is torch's: what it shares is torch's doing
            for _ in range(3):
                o.step()
                s.step()
            o2 = _opt("f64", (0.1,))
            s2 = build(M, o2)
            o2.load_state_dict(o.state_dict())
            s2.load_state_dict(s.state_dict())
            seen = []
            for _ in range(12):
                for opt, sched in ((o, s), (o2, s2)):
                    opt.step()
                    sched.step()
                seen.append((_group_state(o2), _floats(s2.get_last_lr())))
        runs.append(seen)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("lr_type", ["float", "f64"])
def test_swalr_state_dict_under_weights_only_follows_torch(lr_type: str) -> None:
    # older torch's SWALR state dict holds its anneal function, which torch.load(weights_only=True) refuses
    import io

    got = []
    for M, swa in SIDES:
        s = swa(_opt(lr_type), swa_lr=0.05, anneal_epochs=3, anneal_strategy="linear")
        buf = io.BytesIO()
        torch.save(s.state_dict(), buf)
        buf.seek(0)
        try:
            loaded: Any = sorted(torch.load(buf, weights_only=True))
        except Exception as e:  # noqa: BLE001 - the type is compared with torch's
            loaded = type(e)
        got.append(loaded)
    assert got[0] == got[1]


@pytest.mark.parametrize("lr_type", ["float", "f64"])
def test_a_bool_hyperparameter_follows_torch(lr_type: str) -> None:
    # torch's arithmetic takes a bool as a number with float LRs; with tensor LRs it refuses a bool operand, a
    # RuntimeError on older torch and a NotImplementedError on newer
    got = []
    for M, _ in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt(lr_type, (2.0, 3.0))
            seen: list[Any] = []
            try:
                s = M.CosineAnnealingLR(o, 10, eta_min=True)
                for _ in range(12):
                    o.step()
                    s.step()
                    seen.append(_group_state(o))
            except Exception as e:  # noqa: BLE001 - the type is compared with torch's
                seen.append(type(e))
        got.append(seen)
    assert got[0] == got[1]


@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("T_0,T_mult,last_epoch", [(1, 2, 3), (2, 3, 10), (3, 1, 7), (2, 2, -1)])
def test_warm_restarts_follow_torch(T_0: int, T_mult: int, last_epoch: int, lr_type: str) -> None:
    # older torch subtracts T_i once from a T_cur past a restart (a resumed schedule can stay past it) and assigns
    # the LRs, a tensor LR replaced by a new tensor each step; newer torch takes T_cur modulo T_i and fills
    got = []
    for M, _ in SIDES:
        o = _opt(lr_type)
        if last_epoch != -1:
            for g in o.param_groups:
                g["initial_lr"] = g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
        s = M.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min=1e-3, last_epoch=last_epoch)
        seen = []
        for _ in range(20):
            before = [g["lr"] for g in o.param_groups]
            o.step()
            s.step()
            seen.append((_group_state(o), s.T_cur, s.T_i, [g["lr"] is b for g, b in zip(o.param_groups, before)]))
        got.append(seen)
    assert got[0] == got[1]


ADDED_GROUP: dict[str, Callable[[Any, Any, torch.optim.Optimizer], Any]] = {
    **{name: BUILDERS[name] for name in ("ExponentialLR", "CosineAnnealingLR", "LambdaLR", "MultiplicativeLR",
                                         "StepLR", "CyclicLR", "SWALR-cos")},
    "LambdaLR-list": lambda M, swa, o: M.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 0.8 ** e]),
    "MultiStepLR": lambda M, swa, o: M.MultiStepLR(o, [2, 4, 9], 0.5),
    "WarmRestarts": lambda M, swa, o: M.CosineAnnealingWarmRestarts(o, 3, 2),
}


@pytest.mark.parametrize("epoch", [None, 6], ids=["step", "step-epoch"])
@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("name", sorted(ADDED_GROUP))
def test_a_param_group_added_later_follows_torch(name: str, lr_type: str, epoch: Any) -> None:
    # newer torch zips the groups with base_lrs (and lr_lambdas, max_lrs, ...) strictly: ValueError once a group
    # was added; older torch stops at the shorter one, the groups past it keep their LRs
    got = []
    for M, swa in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt(lr_type)
            s = ADDED_GROUP[name](M, swa, o)
            seen: list[Any] = []
            for i in range(8):
                if i == 3:
                    lr: Any = 0.05 if lr_type == "float" else torch.tensor(0.05, dtype=torch.float64)
                    o.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": lr})
                o.step()
                try:
                    s.step(epoch) if i == 5 and epoch is not None else s.step()
                except Exception as e:  # noqa: BLE001 - the type is compared with torch's
                    seen.append(type(e))
                    break
                seen.append((_floats(g["lr"] for g in o.param_groups), _floats(s.get_last_lr()), s.last_epoch))
        got.append(seen)
    assert got[0] == got[1]


@pytest.mark.parametrize("edit", ["replace", "scale"])
def test_sequentiallr_with_an_lr_edited_by_hand_follows_torch(edit: str) -> None:
    # older torch: SequentialLR makes each group's initial_lr (every scheduler's base LR) the group's LR, so the
    # steps change the base LRs in place until the LR is replaced; the next scheduler's closed form reads them
    got = []
    for M, _ in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt("f64", (0.1,))
            s = M.SequentialLR(o, [M.CosineAnnealingLR(o, 10), M.LinearLR(o, 0.01, total_iters=1),
                                   M.LambdaLR(o, lambda e: 0.9 ** e)], [3, 6])
            seen = []
            for i in range(10):
                if i == 1:
                    g = o.param_groups[0]
                    if edit == "replace":
                        g["lr"] = torch.tensor(float(g["lr"]) * 0.5, dtype=torch.float64)
                    else:
                        g["lr"].mul_(0.5)
                o.step()
                s.step()
                seen.append((_group_state(o), _floats(s.get_last_lr())))
        got.append(seen)
    assert got[0] == got[1]


def test_torch_private_names_are_read_in_one_module() -> None:
    """Every private name of torch the package uses (``torch._x``, ``torch.y._z``, the step wrapper's marks) is in
    ``_torch_compat``, where each has a fallback: scanned in the package as installed."""
    import pathlib
    import re

    import torchsched

    private = re.compile(r"\btorch(?:\.[A-Za-z]\w*)*\._[A-Za-z]\w*|_wrapped_by_lr_sched|_opt_called")
    root = pathlib.Path(torchsched.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        if path.name == "_torch_compat.py":
            continue
        hits = [line.strip() for line in path.read_text().splitlines()
                if private.search(line) and not line.lstrip().startswith("#")]
        if hits:
            found[str(path.relative_to(root))] = hits
    assert found == {}
    compat = (root / "_torch_compat.py").read_text()
    assert private.search(compat)  # (the scan finds what it looks for)


@pytest.mark.parametrize("ord", [1, 2])
def test_foreach_norm_fallback_equals_the_fused_norms(ord: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where torch has no _foreach_norm, the per-tensor norms give the same values in the same dtype."""
    from torchsched import _torch_compat as compat

    gen = torch.Generator().manual_seed(ord)
    tensors = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen) * 1e3, torch.zeros(2)]
    fused = compat.foreach_norm(tensors, ord, torch.float64)
    monkeypatch.setattr(compat, "_FOREACH_NORM", None)
    plain = compat.foreach_norm(tensors, ord, torch.float64)
    assert [t.dtype for t in plain] == [torch.float64] * 3
    torch.testing.assert_close(torch.stack(plain), torch.stack(fused), rtol=1e-12, atol=0.0)
    assert float(plain[2]) == 0.0 and float(plain[1]) > float(plain[0]) > 0.0
