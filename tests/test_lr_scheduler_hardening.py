"""The drop-in classes under bad, extreme and adversarial input, compared with torch's own classes: the same
exception types (raised at construction where torch raises later), messages that name the class and the
argument, atomic ``load_state_dict``, copies that step on identically, and a property test over random
constructor arguments."""

from __future__ import annotations

import copy
import math
import pickle
import re
import warnings
from collections import Counter
from typing import Any, Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as TL
from torch.optim import swa_utils

from torchsched import _core
from torchsched import lr_scheduler as SL
from torchsched import schedules as S
from torchsched._validate import MissingStateKeyError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NAN, INF = math.nan, math.inf


def _optimizer(groups: int = 2, lr: Any = 0.1, momentum: float = 0.9) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * (g + 1)} for g, p in enumerate(params)], lr=lr,
                           momentum=momentum)


def _torch_twin(name: str) -> Any:
    return getattr(swa_utils, name) if name == "SWALR" else getattr(TL, name)


def _lrs(scheduler: Any) -> list[float]:
    return [float(v) for v in scheduler.get_last_lr()]


_REFUSED_NOT_FINITE = re.compile(r"^\w+: \S+ must be finite, got ")


def _run(module: Any, name: str, kwargs: dict[str, Any], steps: int = 20,
         lrs: list[Any] | None = None) -> tuple[str, Any]:
    """("raised", exception type) or ("lrs", the LRs after construction and after each step); "refused" for
    the twin's documented refusal of a non-finite hyperparameter (given, or computed from the arguments). ``lrs``
    receives the LRs up to an error."""
    cls = _torch_twin(name) if module is TL else getattr(SL, name)
    out: list[Any] = [] if lrs is None else lrs
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = cls(_optimizer(), **kwargs)
            out.append(_lrs(scheduler))
            for _ in range(steps):
                scheduler.optimizer.step()
                scheduler.step()
                out.append(_lrs(scheduler))
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        if module is SL and isinstance(exc, _core.NonFiniteLRError):
            return "refused lr", out  # the LRs up to the step refused: torch stores a non-finite LR there
        if module is SL and type(exc) is ValueError and _REFUSED_NOT_FINITE.match(str(exc)):
            return "refused", ValueError
        return "raised", type(exc)
    return "lrs", out


def _same_number(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


def _same_state(a: Any, b: Any) -> bool:
    """Equality of state dicts, with tensors compared by dtype and value."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and bool(torch.equal(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return _same_number(a, b)
    return type(a) is type(b) and a == b


# ---- 1. lr_lambda=None -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
@pytest.mark.parametrize("lr_lambda", [None, [None, lambda e: 1.0], "x", 0.5])
def test_lr_lambda_not_callable_raises_torchs_type_at_construction(name: str, lr_lambda: Any) -> None:
    kind, torch_error = _run(TL, name, {"lr_lambda": lr_lambda})
    assert (kind, torch_error) == ("raised", TypeError)
    with pytest.raises(TypeError, match="lr_lambda"):
        getattr(SL, name)(_optimizer(), lr_lambda)


def test_lambda_lr_none_message_names_class_and_argument() -> None:
    with pytest.raises(TypeError, match=r"^LambdaLR: lr_lambda\[0\] must be a function"):
        SL.LambdaLR(_optimizer(), None)


# ---- 2. non-finite hyperparameters: refused at construction, naming the class and the argument ----

NON_FINITE = [
    ("StepLR", {"step_size": 2, "gamma": INF}, "gamma"),
    ("StepLR", {"step_size": NAN}, "step_size"),
    ("MultiStepLR", {"milestones": [2, 4], "gamma": NAN}, "gamma"),
    ("MultiStepLR", {"milestones": [2, INF]}, "milestones"),
    ("ConstantLR", {"factor": NAN}, "factor"),
    ("ConstantLR", {"total_iters": INF}, "total_iters"),
    ("LinearLR", {"end_factor": NAN}, "end_factor"),
    ("LinearLR", {"total_iters": NAN}, "total_iters"),
    ("ExponentialLR", {"gamma": INF}, "gamma"),
    ("ExponentialLR", {"gamma": -INF}, "gamma"),
    ("ExponentialLR", {"gamma": torch.tensor(NAN)}, "gamma"),
    ("PolynomialLR", {"power": INF}, "power"),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": INF}, "eta_min"),
    ("CosineAnnealingLR", {"T_max": NAN}, "T_max"),
    ("CosineAnnealingWarmRestarts", {"T_0": 3, "eta_min": NAN}, "eta_min"),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.1, "mode": "exp_range", "gamma": NAN}, "gamma"),
]


@pytest.mark.parametrize(("name", "kwargs", "argument"), NON_FINITE, ids=lambda v: str(v))
def test_non_finite_hyperparameter_refused_with_a_clear_message(name: str, kwargs: dict[str, Any],
                                                                argument: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: {argument}.* must be finite, got "):
        getattr(SL, name)(_optimizer(), **kwargs)


def test_non_finite_hyperparameter_reassigned_refused_before_the_step_moves() -> None:
    scheduler = SL.ExponentialLR(_optimizer(), 0.5)
    scheduler.gamma = INF
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match="^ExponentialLR: gamma must be finite, got inf"):
        scheduler.step()
    assert _same_state(scheduler.state_dict(), before)


def test_huge_int_hyperparameter_is_an_overflow_error_naming_it() -> None:
    with pytest.raises(OverflowError, match="^StepLR: step_size is too large"):
        SL.StepLR(_optimizer(), step_size=10**400)


# ---- 3. an optimizer with no param groups steps, as torch's does ----------------------------------

NO_GROUPS = [
    ("StepLR", {"step_size": 2}), ("ExponentialLR", {"gamma": 0.5}), ("LambdaLR", {"lr_lambda": []}),
    ("MultiStepLR", {"milestones": [1]}), ("ConstantLR", {}), ("LinearLR", {}), ("PolynomialLR", {}),
    ("CosineAnnealingLR", {"T_max": 3}), ("CosineAnnealingWarmRestarts", {"T_0": 2}),
]


@pytest.mark.parametrize(("name", "kwargs"), NO_GROUPS, ids=[n for n, _ in NO_GROUPS])
def test_optimizer_without_param_groups_steps_like_torch(name: str, kwargs: dict[str, Any]) -> None:
    results = []
    for cls in (_torch_twin(name), getattr(SL, name)):
        opt = _optimizer(1)
        opt.param_groups.clear()
        scheduler = cls(opt, **kwargs)
        for _ in range(3):
            scheduler.step()
        results.append((scheduler.get_last_lr(), scheduler.last_epoch))
    assert results[1] == results[0] == ([], 3)


# ---- 4. OneCycleLR saved by an older torch (anneal_func instead of _anneal_func_type) ----------------

def _one_cycle(module: Any, strategy: str = "cos") -> Any:
    return module.OneCycleLR(_optimizer(), max_lr=[1.0, 2.0], total_steps=12, anneal_strategy=strategy)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_one_cycle_object_from_an_older_torch_steps_like_torch(strategy: str) -> None:
    runs = []
    for module in (TL, SL):
        scheduler = _one_cycle(module, strategy)
        scheduler.step()
        state = scheduler.__getstate__() if module is SL else scheduler.__dict__.copy()
        state = dict(state)
        del state["_anneal_func_type"]
        state["anneal_func"] = getattr(TL.OneCycleLR, f"_annealing_{strategy}")
        old = type(scheduler).__new__(type(scheduler))
        if module is SL:
            old.__setstate__(state)
        else:
            old.__dict__.update(state)
        lrs = []
        for _ in range(8):
            old.optimizer.step()
            old.step()
            lrs.append(_lrs(old) + [g["momentum"] for g in old.optimizer.param_groups])
        runs.append(lrs)
    assert runs[1] == runs[0]


def test_one_cycle_state_dict_from_an_older_torch_loads_like_torch() -> None:
    runs = []
    for module in (TL, SL):
        state = _one_cycle(module).state_dict()
        del state["_anneal_func_type"]
        state["anneal_func"] = TL.OneCycleLR._annealing_cos
        scheduler = _one_cycle(module, "linear")
        scheduler.load_state_dict(state)
        for _ in range(5):
            scheduler.step()
        runs.append(_lrs(scheduler))
    assert runs[1] == runs[0]


# ---- 5. a negative last_epoch in a state dict, and step(epoch) given NaN ---------------------------

def test_linear_lr_negative_last_epoch_raises_torchs_zero_division() -> None:
    for module in (TL, SL):
        scheduler = module.LinearLR(_optimizer(), start_factor=0.5, total_iters=4)
        state = scheduler.state_dict()
        state["last_epoch"] = -5
        scheduler.load_state_dict(state)
        scheduler.step()  # -4: finite in both
        lrs = [g["lr"] for g in scheduler.optimizer.param_groups]
        with pytest.raises(ZeroDivisionError):
            scheduler.step()  # -3: torch's denominator is 0
        assert [g["lr"] for g in scheduler.optimizer.param_groups] == lrs
        assert all(math.isfinite(v) for v in lrs)


@pytest.mark.parametrize(("epoch", "error"), [(NAN, ValueError), (INF, OverflowError), (-INF, OverflowError),
                                              ("3", TypeError)])
@pytest.mark.parametrize("name", ["LinearLR", "StepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "CosineAnnealingWarmRestarts"])
def test_step_epoch_not_finite_raises_before_anything_changes(name: str, epoch: Any, error: type) -> None:
    kwargs = {"StepLR": {"step_size": 2}, "ExponentialLR": {"gamma": 0.5}, "CosineAnnealingLR": {"T_max": 4},
              "CosineAnnealingWarmRestarts": {"T_0": 3}}.get(name, {})
    scheduler = getattr(SL, name)(_optimizer(), **kwargs)
    scheduler.step()
    before = scheduler.state_dict()
    lrs = [g["lr"] for g in scheduler.optimizer.param_groups]
    with pytest.raises(error, match=rf"^{name}\.step: epoch"):
        scheduler.step(epoch)
    assert _same_state(scheduler.state_dict(), before)
    assert [g["lr"] for g in scheduler.optimizer.param_groups] == lrs


def test_step_epoch_nan_is_torchs_error_type_where_torch_raises() -> None:
    for module in (TL, SL):
        with pytest.raises(ValueError):
            module.CosineAnnealingWarmRestarts(_optimizer(), T_0=3).step(NAN)
        with pytest.raises(OverflowError):
            module.CosineAnnealingWarmRestarts(_optimizer(), T_0=3).step(INF)


# ---- 6. wrong types raise torch's type; tensor hyperparameters keep torch's types -------------------

WRONG_TYPES = [
    ("StepLR", {"step_size": 1, "gamma": "0.5"}, "gamma"), ("StepLR", {"step_size": "2"}, "step_size"),
    ("StepLR", {"step_size": 1, "gamma": None}, "gamma"), ("StepLR", {"step_size": 1, "gamma": [0.5]}, "gamma"),
    ("ExponentialLR", {"gamma": "x"}, "gamma"), ("ExponentialLR", {"gamma": None}, "gamma"),
    ("MultiStepLR", {"milestones": [2], "gamma": "0.5"}, "gamma"),
    ("LinearLR", {"total_iters": "3"}, "total_iters"), ("LinearLR", {"total_iters": None}, "total_iters"),
    ("PolynomialLR", {"power": "2"}, "power"), ("PolynomialLR", {"total_iters": "4"}, "total_iters"),
    ("CosineAnnealingLR", {"T_max": "5"}, "T_max"), ("CosineAnnealingLR", {"T_max": 5, "eta_min": "0.1"}, "eta_min"),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.1, "mode": "exp_range", "gamma": "0.9"}, "gamma"),
]


@pytest.mark.parametrize(("name", "kwargs", "argument"), WRONG_TYPES, ids=lambda v: str(v))
def test_wrong_type_raises_torchs_exception_type_naming_class_and_argument(name: str, kwargs: dict[str, Any],
                                                                           argument: str) -> None:
    torch_kind, torch_error = _run(TL, name, kwargs)
    assert (torch_kind, torch_error) == ("raised", TypeError)
    with pytest.raises(TypeError, match=rf"^{name}: {argument} must be a real number, got "):
        getattr(SL, name)(_optimizer(), **kwargs)


# torch never compares these with the step as numbers, so it runs on with a schedule that ignores them (its
# closed form raises TypeError): refused at construction with torch's type
SILENTLY_WRONG_IN_TORCH = [
    ("ConstantLR", {"factor": 0.5, "total_iters": "3"}, "total_iters"),
    ("MultiStepLR", {"milestones": ["2"]}, "milestones"),
]


@pytest.mark.parametrize(("name", "kwargs", "argument"), SILENTLY_WRONG_IN_TORCH, ids=lambda v: str(v))
def test_wrong_type_torch_ignores_is_refused_with_torchs_closed_form_type(name: str, kwargs: dict[str, Any],
                                                                          argument: str) -> None:
    scheduler = _torch_twin(name)(_optimizer(), **kwargs)
    with pytest.raises(TypeError):
        scheduler.step(4)
    with pytest.raises(TypeError, match=rf"^{name}: {argument} must be a real number, got "):
        getattr(SL, name)(_optimizer(), **kwargs)


TENSOR_HYPERPARAMETERS = [
    ("ExponentialLR", {"gamma": torch.tensor(0.5)}),
    ("StepLR", {"step_size": 2, "gamma": torch.tensor(0.5)}),
    ("MultiStepLR", {"milestones": [1, 3], "gamma": torch.tensor(0.5, dtype=torch.float64)}),
    ("CosineAnnealingLR", {"T_max": 4, "eta_min": torch.tensor(0.01)}),
    ("PolynomialLR", {"total_iters": 4, "power": torch.tensor(2.0)}),
    ("LinearLR", {"start_factor": torch.tensor(0.5)}),
]


@pytest.mark.parametrize(("name", "kwargs"), TENSOR_HYPERPARAMETERS, ids=[n for n, _ in TENSOR_HYPERPARAMETERS])
def test_tensor_hyperparameter_keeps_torchs_types_and_values(name: str, kwargs: dict[str, Any]) -> None:
    seen = []
    for module in (TL, SL):
        scheduler = (_torch_twin(name) if module is TL else getattr(SL, name))(_optimizer(), **kwargs)
        trace = []
        for _ in range(6):
            scheduler.optimizer.step()
            scheduler.step()
            lrs = [g["lr"] for g in scheduler.optimizer.param_groups] + list(scheduler.get_last_lr())
            trace.append([(type(v), getattr(v, "dtype", None), float(v)) for v in lrs])
        seen.append(trace)
    assert seen[1] == seen[0]


# ---- 7. atomic load_state_dict ----------------------------------------------------------------------

def _lambda_half(epoch: int) -> float:
    return 0.5 ** epoch


class _Scaled:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, epoch: int) -> float:
        return self.factor ** epoch


ATOMIC: list[tuple[str, Callable[[Any], Any]]] = [
    ("StepLR", lambda o: SL.StepLR(o, 2, 0.5)),
    ("MultiStepLR", lambda o: SL.MultiStepLR(o, [2, 4], 0.5)),
    ("ConstantLR", lambda o: SL.ConstantLR(o, 0.5, 3)),
    ("LinearLR", lambda o: SL.LinearLR(o, 0.5, 1.0, 4)),
    ("ExponentialLR", lambda o: SL.ExponentialLR(o, 0.9)),
    ("PolynomialLR", lambda o: SL.PolynomialLR(o, 5, 2.0)),
    ("CosineAnnealingLR", lambda o: SL.CosineAnnealingLR(o, 6, 0.001)),
    ("CosineAnnealingWarmRestarts", lambda o: SL.CosineAnnealingWarmRestarts(o, 3, 2, 0.001)),
    ("CyclicLR", lambda o: SL.CyclicLR(o, 0.01, 0.1, step_size_up=3)),
    ("OneCycleLR", lambda o: SL.OneCycleLR(o, 1.0, total_steps=20)),
    ("SWALR", lambda o: SL.SWALR(o, swa_lr=0.05, anneal_epochs=3)),
    ("LambdaLR", lambda o: SL.LambdaLR(o, [_Scaled(0.9), _lambda_half])),
    ("MultiplicativeLR", lambda o: SL.MultiplicativeLR(o, _Scaled(0.9))),
]

CORRUPTIONS: list[tuple[str, Callable[[dict[str, Any]], None], type]] = [
    ("last_epoch nan", lambda s: s.update(last_epoch=NAN), ValueError),
    ("last_epoch str", lambda s: s.update(last_epoch="3"), TypeError),
    ("_step_count negative", lambda s: s.update(_step_count=-1), ValueError),
    ("_step_count float", lambda s: s.update(_step_count=1.5), TypeError),
    ("base_lrs nan", lambda s: s.update(base_lrs=[NAN, 0.2]), ValueError),
    ("base_lrs not a list", lambda s: s.update(base_lrs=0.1), TypeError),
    ("no last_epoch", lambda s: s.pop("last_epoch"), KeyError),
    ("no base_lrs", lambda s: s.pop("base_lrs"), KeyError),
    ("_last_lr inf", lambda s: s.update(_last_lr=[INF, 0.1]), ValueError),
]

HYPERPARAMETER_CORRUPTIONS = {
    "StepLR": ("gamma", "x"), "MultiStepLR": ("gamma", NAN), "ConstantLR": ("factor", None),
    "LinearLR": ("total_iters", INF), "ExponentialLR": ("gamma", "0.9"), "PolynomialLR": ("power", NAN),
    "CosineAnnealingLR": ("T_max", "6"), "CosineAnnealingWarmRestarts": ("T_i", NAN), "CyclicLR": ("max_lrs", [NAN]),
    "OneCycleLR": ("total_steps", "20"), "SWALR": ("anneal_epochs", None),
    "LambdaLR": ("lr_lambdas", [3, None]), "MultiplicativeLR": ("lr_lambdas", "x"),
}


def _stepped(build: Callable[[Any], Any]) -> Any:
    scheduler = build(_optimizer())
    for _ in range(3):
        scheduler.optimizer.step()
        scheduler.step()
    return scheduler


def _assert_failed_load_changes_nothing(scheduler: Any, state: dict[str, Any], error: type) -> None:
    before = scheduler.state_dict()
    lrs = [g["lr"] for g in scheduler.optimizer.param_groups]
    with pytest.raises(error):
        scheduler.load_state_dict(state)
    assert _same_state(scheduler.state_dict(), before)
    assert [g["lr"] for g in scheduler.optimizer.param_groups] == lrs
    scheduler.step()  # and it still steps as before
    assert all(math.isfinite(float(v)) for v in scheduler.get_last_lr())


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
@pytest.mark.parametrize(("name", "build"), ATOMIC, ids=[n for n, _ in ATOMIC])
def test_corrupted_state_dict_raises_and_changes_nothing(name: str, build: Callable[[Any], Any],
                                                         corruption: tuple[str, Any, type]) -> None:
    _, corrupt, error = corruption
    scheduler = _stepped(build)
    state = copy.deepcopy(_stepped(build).state_dict())
    state["last_epoch"] = 1  # a valid change, which must not be applied either
    corrupt(state)
    _assert_failed_load_changes_nothing(scheduler, state, error)


@pytest.mark.parametrize(("name", "build"), ATOMIC, ids=[n for n, _ in ATOMIC])
def test_corrupted_hyperparameter_in_state_dict_raises_and_changes_nothing(name: str,
                                                                           build: Callable[[Any], Any]) -> None:
    key, value = HYPERPARAMETER_CORRUPTIONS[name]
    scheduler = _stepped(build)
    state = _stepped(build).state_dict()
    state["last_epoch"] = 1
    state[key] = value
    _assert_failed_load_changes_nothing(scheduler, state, (TypeError, ValueError))


def test_missing_entry_is_a_key_error_and_a_value_error() -> None:
    scheduler = SL.StepLR(_optimizer(), 2)
    with pytest.raises(MissingStateKeyError, match="^StepLR.load_state_dict: state_dict has no 'last_epoch'") as info:
        scheduler.load_state_dict({"base_lrs": [0.1, 0.2]})
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="must be a dict"):
        scheduler.load_state_dict([("last_epoch", 3)])  # type: ignore[arg-type]


def test_lambda_lr_failed_load_restores_the_lambdas_objects() -> None:
    scheduler = SL.LambdaLR(_optimizer(), [_Scaled(0.9), _Scaled(0.8)])
    state = scheduler.state_dict()
    state["lr_lambdas"] = [{"factor": 0.5}, {"factor": 0.4}]
    state["_step_count"] = -3
    with pytest.raises(ValueError, match="_step_count"):
        scheduler.load_state_dict(state)
    assert [fn.factor for fn in scheduler.lr_lambdas] == [0.9, 0.8]


@pytest.mark.parametrize("composite", ["SequentialLR", "ChainedScheduler"])
def test_composite_failed_load_restores_every_scheduler(composite: str) -> None:
    def build() -> Any:
        opt = _optimizer()
        inner = [SL.ConstantLR(opt, 0.5, 2), SL.ExponentialLR(opt, 0.9)]
        if composite == "SequentialLR":
            return SL.SequentialLR(opt, inner, milestones=[2])
        return SL.ChainedScheduler(inner)

    scheduler = build()
    for _ in range(3):
        scheduler.step()
    state = build().state_dict()
    state["_schedulers"][1]["gamma"] = NAN  # the second fails after the first was loaded
    before = [s.state_dict() for s in scheduler._schedulers]
    with pytest.raises(ValueError, match="ExponentialLR: gamma must be finite"):
        scheduler.load_state_dict(state)
    assert all(_same_state(s.state_dict(), b) for s, b in zip(scheduler._schedulers, before))
    with pytest.raises(MissingStateKeyError):
        scheduler.load_state_dict({"last_epoch": 3})


PLATEAU_CORRUPTIONS = [
    ("mode", "sideways", ValueError), ("threshold_mode", "relative", ValueError), ("factor", NAN, ValueError),
    ("patience", "2", TypeError), ("num_bad_epochs", -1, ValueError), ("cooldown_counter", "0", TypeError),
    ("best", NAN, ValueError), ("min_lrs", [INF, 0.0], ValueError), ("last_epoch", None, TypeError),
]


@pytest.mark.parametrize(("key", "value", "error"), PLATEAU_CORRUPTIONS, ids=[c[0] for c in PLATEAU_CORRUPTIONS])
def test_plateau_corrupted_state_dict_raises_and_changes_nothing(key: str, value: Any, error: type) -> None:
    scheduler = SL.ReduceLROnPlateau(_optimizer(), patience=1)
    for metric in (1.0, 2.0, 3.0):
        scheduler.step(metric)
    state = scheduler.state_dict()
    state["patience"] = 7  # a valid change, which must not be applied either
    state[key] = value
    before = scheduler.state_dict()
    with pytest.raises(error):
        scheduler.load_state_dict(state)
    assert _same_state(scheduler.state_dict(), before)
    assert scheduler.mode == "min" and scheduler.patience == 1


# ---- 8. pickling and deep copies --------------------------------------------------------------------

COPYABLE = ATOMIC + [
    ("ReduceLROnPlateau", lambda o: SL.ReduceLROnPlateau(o, patience=0)),
    ("LambdaLR spec", lambda o: SL.LambdaLR(o, S.cosine(10))),
    ("SequentialLR", lambda o: SL.SequentialLR(o, [SL.ConstantLR(o, 0.5, 2), SL.ExponentialLR(o, 0.9)], [2])),
    ("ChainedScheduler", lambda o: SL.ChainedScheduler([SL.ConstantLR(o, 0.5, 2), SL.ExponentialLR(o, 0.9)])),
]


def _step(scheduler: Any, i: int) -> None:
    scheduler.optimizer.step()
    if isinstance(scheduler, SL.ReduceLROnPlateau):
        scheduler.step(1.0 / (1 + i % 3))
    else:
        scheduler.step()


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@pytest.mark.parametrize(("name", "build"), COPYABLE, ids=[n for n, _ in COPYABLE])
def test_copy_steps_on_identically(name: str, build: Callable[[Any], Any], how: str) -> None:
    scheduler = build(_optimizer())
    for i in range(3):
        _step(scheduler, i)
    twin = pickle.loads(pickle.dumps(scheduler)) if how == "pickle" else copy.deepcopy(scheduler)
    assert twin.optimizer is not scheduler.optimizer
    assert _same_state(twin.state_dict(), scheduler.state_dict())
    for i in range(3, 10):
        _step(scheduler, i)
        _step(twin, i)
        assert _lrs(twin) == _lrs(scheduler)
        assert [g["lr"] for g in twin.optimizer.param_groups] == [g["lr"] for g in scheduler.optimizer.param_groups]


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_lambda_lr_on_an_evaluated_spec_copies(how: str) -> None:
    spec = S.cosine(10)
    spec(3)  # evaluated: the spec holds its compiled program
    scheduler = SL.LambdaLR(_optimizer(), spec)
    scheduler.step()
    twin = pickle.loads(pickle.dumps(scheduler)) if how == "pickle" else copy.deepcopy(scheduler)
    for _ in range(4):
        scheduler.step()
        twin.step()
        assert _lrs(twin) == _lrs(scheduler)


# ---- 9. property: torch and the twin agree on random (valid and invalid) arguments -------------------

_REALS = st.one_of(
    st.floats(-2.0, 2.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, 0.5, NAN, INF, -INF, 1e300, -1e300, 1e-300, "x", "0.5", None, True]),
    st.floats(0.05, 1.0).map(lambda v: torch.tensor(v)),
)
_COUNTS = st.one_of(
    st.integers(-3, 8),
    st.sampled_from([0, 2**40, -(2**40), 2.5, NAN, INF, "3", None]),
    st.integers(1, 6).map(lambda v: torch.tensor(v)),
)
_FACTORS = st.one_of(st.floats(0.0, 1.0), st.sampled_from([NAN, INF, -0.5, 1.5, "0.5", None]),
                     st.floats(0.05, 1.0).map(lambda v: torch.tensor(v)))
_LAMBDAS = st.sampled_from([None, "x", 0.5, _lambda_half, _Scaled(0.9), S.cosine(30), [None, _lambda_half]])

STRATEGIES: dict[str, dict[str, Any]] = {
    "StepLR": {"step_size": _COUNTS, "gamma": _REALS},
    "MultiStepLR": {"milestones": st.lists(_COUNTS, max_size=3), "gamma": _REALS},
    "ConstantLR": {"factor": _FACTORS, "total_iters": _COUNTS},
    "LinearLR": {"start_factor": _FACTORS, "end_factor": _FACTORS, "total_iters": _COUNTS},
    "ExponentialLR": {"gamma": _REALS},
    "PolynomialLR": {"total_iters": _COUNTS, "power": _REALS},
    "CosineAnnealingLR": {"T_max": _COUNTS, "eta_min": _REALS},
    "CosineAnnealingWarmRestarts": {"T_0": _COUNTS, "T_mult": _COUNTS, "eta_min": _REALS},
    "CyclicLR": {"base_lr": _FACTORS, "max_lr": _REALS, "step_size_up": _COUNTS,
                 "mode": st.sampled_from(["triangular", "triangular2", "exp_range"]), "gamma": _REALS},
    "OneCycleLR": {"max_lr": _REALS, "total_steps": st.one_of(st.integers(15, 30), _COUNTS), "pct_start": _FACTORS,
                   "div_factor": _REALS, "final_div_factor": _REALS},
    "SWALR": {"swa_lr": _REALS, "anneal_epochs": _COUNTS,
              "anneal_strategy": st.sampled_from(["cos", "linear"])},
    "LambdaLR": {"lr_lambda": _LAMBDAS},
    "MultiplicativeLR": {"lr_lambda": _LAMBDAS},
}


def _not_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not bool(torch.isfinite(value).all())
    if isinstance(value, (list, tuple)):
        return any(_not_finite(v) for v in value)
    return isinstance(value, float) and not math.isfinite(value)


def _not_a_number(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_not_a_number(v) for v in value)
    return isinstance(value, str) or value is None


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_arguments_agree_with_torch(name: str, data: st.DataObject) -> None:
    kwargs = {arg: data.draw(strategy, label=arg) for arg, strategy in STRATEGIES[name].items()}
    torch_lrs: list[Any] = []
    expected = _run(TL, name, kwargs, lrs=torch_lrs)
    got = _run(SL, name, kwargs)
    if got[0] == "refused":
        # the documented choice: a non-finite hyperparameter is refused where torch computes with it
        assert expected[0] == "lrs" or expected[1] is not TypeError or _not_finite(list(kwargs.values())), expected
        return
    if got[0] == "raised" and got == expected:
        return
    if got[0] == "refused lr":  # the documented choice: a step that would store inf or NaN is refused
        k = len(got[1])  # torch stores it at step k (and may raise at a later one: gamma ** n overflowing)
        assert len(torch_lrs) > k, (got, expected)
        assert all(_same_number(a, b) for ours, theirs in zip(got[1], torch_lrs[:k]) for a, b in zip(ours, theirs))
        assert _not_finite(torch_lrs[k]) or any(abs(v) > 3.4e38 for v in torch_lrs[k]), (k, torch_lrs[k])
        return
    if got != expected and any(_not_a_number(v) for k, v in kwargs.items() if k not in ("mode", "anneal_strategy")):
        # refused at construction with torch's type: torch raises it once a step uses the value (after these 20
        # steps for a long period), or first raises for another argument (a zero step_size, an overflow)
        assert got == ("raised", TypeError), (got, expected)
        assert expected[0] == "lrs" or issubclass(expected[1], (TypeError, ValueError, ArithmeticError)), expected
        return
    assert got[0] == expected[0], (got, expected)
    if got[0] == "raised":
        assert got[1] is expected[1]
        return
    for step, (ours, theirs) in enumerate(zip(got[1], expected[1], strict=True)):
        assert len(ours) == len(theirs)
        assert all(_same_number(a, b) for a, b in zip(ours, theirs)), (step, ours, theirs)


POWERS: list[tuple[str, Callable[[Any, Any], Any], tuple[Any, ...]]] = [
    ("ExponentialLR int", lambda M, o: M.ExponentialLR(o, -3), (3, 41, 70, 700)),
    ("ExponentialLR float", lambda M, o: M.ExponentialLR(o, 2.0), (3, 700, 1100)),
    ("StepLR", lambda M, o: M.StepLR(o, 2, 10.0), (3, 400, 700)),
    ("StepLR int", lambda M, o: M.StepLR(o, 1, 3), (41, 700)),
    ("MultiStepLR", lambda M, o: M.MultiStepLR(o, [1, 2, 3], 1e200), (1, 2, 5)),
]


@pytest.mark.parametrize("lr", [0.05, torch.tensor(0.05, dtype=torch.float64)], ids=["float", "f64"])
@pytest.mark.parametrize("label,make,epochs", POWERS, ids=[label for label, _, _ in POWERS])
def test_closed_form_powers_raise_torchs_errors(label: str, make: Any, epochs: tuple[Any, ...], lr: Any) -> None:
    """torch's closed forms compute ``gamma ** n`` in Python: a float power out of range, an int power too large for
    a float, or one past 64 bits times an LR tensor, raise OverflowError, which the twins raise at the same step."""
    got = []
    for module in (TL, SL):
        seen = []
        for epoch in epochs:
            opt = _optimizer(1, lr=lr.clone() if isinstance(lr, torch.Tensor) else lr)
            scheduler = make(module, opt)
            opt.step()
            try:
                scheduler.step(epoch)
                seen.append(float(opt.param_groups[0]["lr"]))
            except Exception as exc:  # noqa: BLE001 - the type is what is compared
                seen.append(type(exc))
            seen.append((scheduler.last_epoch, scheduler._step_count))
        got.append(seen)
    assert got[0] == got[1]


@pytest.mark.parametrize("lr", [0.05, torch.tensor(0.05, dtype=torch.float64)], ids=["float", "f64"])
def test_cyclic_lr_triangular2_overflows_like_torch(lr: Any) -> None:
    """triangular2 scales by 1 / 2.0 ** (cycle - 1): past cycle 1024 the power overflows (OverflowError in torch)."""
    got = []
    for module in (TL, SL):
        opt = _optimizer(1, lr=lr.clone() if isinstance(lr, torch.Tensor) else lr)
        scheduler = module.CyclicLR(opt, 0.01, 0.1, step_size_up=1, step_size_down=1, mode="triangular2")
        seen: Any = None
        for i in range(2100):
            opt.step()
            try:
                scheduler.step()
            except Exception as exc:  # noqa: BLE001 - the type is what is compared
                seen = (i, type(exc))
                break
        got.append((seen, scheduler.last_epoch, _lrs(scheduler), opt.param_groups[0]["momentum"]))
    assert got[0] == got[1] and got[0][0] is not None


def _trace_of(make: Callable[[Any, Any], Any], lr: Any, steps: int = 14, get_lr: bool = False) -> list[Any]:
    """Per side: each step's LRs with their types (or the error type), and get_lr()'s types where asked."""
    got = []
    for module in (TL, SL):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = _optimizer(2, lr=lr.clone() if isinstance(lr, torch.Tensor) else lr)
            seen: list[Any] = []
            try:
                scheduler = make(module, opt)
                for _ in range(steps):
                    opt.step()
                    scheduler.step()
                    seen.append([(type(g["lr"]), float(g["lr"])) for g in opt.param_groups])
                    if get_lr:
                        seen.append([(type(v), float(v)) for v in scheduler.get_lr()])
            except Exception as exc:  # noqa: BLE001 - the type is what is compared
                seen.append(type(exc))
        got.append(seen)
    return got


@pytest.mark.parametrize("lr", [0.1, torch.tensor(0.1, dtype=torch.float64)], ids=["float", "f64"])
@pytest.mark.parametrize("swa_lr,epochs,strategy", [(0, 3, "linear"), (1, 2, "cos"), (0.05, 0, "linear"),
                                                    (0.05, 4, "cos")])
def test_swalr_types_are_torchs(swa_lr: Any, epochs: int, strategy: str, lr: Any) -> None:
    """torch's SWALR stores an int once annealed linearly to an int swa_lr, and its get_lr returns swa_lr itself (a
    float) where the previous step's alpha is 1, a tensor of the group's LR otherwise."""
    make = (lambda module, opt: _torch_twin("SWALR")(opt, swa_lr, epochs, strategy) if module is TL
            else SL.SWALR(opt, swa_lr, epochs, strategy))
    got = _trace_of(make, lr, get_lr=True)
    assert got[0] == got[1]


@pytest.mark.parametrize("lr", [0.1, torch.tensor(0.1, dtype=torch.float64)], ids=["float", "f64"])
@pytest.mark.parametrize("pct_start", [0.3, NAN])
@pytest.mark.parametrize("last_epoch", [3, 20])
def test_onecyclelr_resumed_without_its_group_keys_raises_torchs_error(last_epoch: int, pct_start: float,
                                                                        lr: Any) -> None:
    """Built with a last_epoch, OneCycleLR reads max_lr (and the other keys) from groups that may not hold them:
    torch's errors in torch's order (past total_steps first, then the missing key; before a refusal of NaN)."""
    def make(module: Any, opt: Any) -> Any:
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
        return module.OneCycleLR(opt, 0.5, total_steps=10, pct_start=pct_start, last_epoch=last_epoch)

    got = _trace_of(make, lr)
    assert got[0] == got[1] and isinstance(got[0][-1], type)
