"""What torchsched needs to know about the installed torch, and the one place that knows it.

torch's schedulers changed between the releases the package supports (``torch>=2.4``); each drop-in follows the
torch it runs on. Every fact here is read off torch itself, an attribute it has or what its own code does on a
tiny optimizer, never off a version string, and a private attribute torch lacks gives a documented fallback
here rather than an ``AttributeError`` in a step. Every private name of torch the package uses is here too: the
optimizer-step wrapper a scheduler installs, dynamo's hooks (``torchsched._compile``) and the raw CUDA stream
(``torchsched._cuda``). The rest of the package asks this module and nothing else.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.optim import lr_scheduler as _tl
from torch.optim import swa_utils as _swa

# The constructor's step is flagged (``_is_initial``, which state_dict then carries) and get_lr of ExponentialLR,
# PolynomialLR, CosineAnnealingLR, LinearLR and MultiplicativeLR keeps the LRs there. Without the flag (older
# torch) those get_lr keep the LRs wherever ``last_epoch == 0`` (MultiplicativeLR: ``last_epoch <= 0``) instead.
INITIAL_FLAG: bool = "_is_initial" in vars(_tl.LRScheduler)

# The core's chainable rules keep the LR at t = 0 unless told to chain there (torch_rules.hpp): with the flag the
# drop-ins decide the initial step themselves; without it, t = 0 always keeps, as torch's get_lr then does.
CHAIN_AT_0: float = 1.0 if INITIAL_FLAG else 0.0

# torch's step() without its warnings and counter, which SequentialLR calls at a milestone; older torch calls
# step(0) there (counting the step and warning that the epoch argument is deprecated).
_TORCH_UPDATE_LR: Any = getattr(_tl.LRScheduler, "_update_lr", None)
UPDATE_LR: bool = callable(_TORCH_UPDATE_LR)


def _zips_strict() -> bool:
    """Whether torch's steps zip the groups with their per-group lists strictly (a ValueError where the lengths
    differ) or stop at the shorter one (older torch): read off torch's LambdaLR, stepped once a group was added."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _tl.LambdaLR(opt, lambda epoch: 1.0)
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1})
        try:
            sched.step()
        except ValueError:
            return True
    return False


# A group added after construction: newer torch raises ValueError where a per-group list (base_lrs, lr_lambdas,
# max_lrs, ...) is shorter or longer than the groups; older torch steps as many groups as the shorter one has.
STRICT_ZIPS: bool = _zips_strict()

# _last_lr (and get_lr's kept LRs) hold clones of tensor LRs; older torch keeps the groups' tensors themselves, so
# a scheduler's get_last_lr() follows later in-place changes of the LRs (a second scheduler on the optimizer).
CLONES_LRS: bool = callable(getattr(_tl, "_param_groups_val_list", None))



def _plateau_fills_tensor_lrs() -> bool:
    """Whether torch's ReduceLROnPlateau reduces a tensor LR in place (2.13 on) or puts a Python float in its
    place (before): read off torch's own class, reducing a tiny optimizer's LR once."""
    given: Any = torch.tensor(1.0, dtype=torch.float64)  # (older torch annotates lr as a float)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=given)
    lr = opt.param_groups[0]["lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _tl.ReduceLROnPlateau(opt, patience=0, factor=0.5)
        sched.step(1.0)
        sched.step(2.0)
    return opt.param_groups[0]["lr"] is lr


# ReduceLROnPlateau fills a tensor LR in place; older torch replaces it by a Python float when it reduces it (so
# the drop-in's device mode, which must write the tensor, is off there, and the float path assigns floats).
PLATEAU_FILLS_TENSOR_LRS: bool = _plateau_fills_tensor_lrs()


def _plateau_default_min_lr() -> bool:
    """Whether torch's ReduceLROnPlateau keeps ``default_min_lr`` (a scalar min_lr, which fills ``min_lrs`` when
    the number of groups changed, else a RuntimeError there): read off an instance of torch's own class."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    return "default_min_lr" in vars(_tl.ReduceLROnPlateau(opt))


# Without default_min_lr (older torch) a reduction indexes min_lrs group by group: an IndexError past its end, after
# the groups before it were reduced. The drop-in's C step needs the attribute, so there such a step runs torch's.
PLATEAU_DEFAULT_MIN_LR: bool = _plateau_default_min_lr()


def _warm_restarts() -> tuple[bool, bool]:
    """torch's CosineAnnealingWarmRestarts, read off its own class: whether a T_cur past the period is taken modulo
    T_i (else T_i is subtracted once), and whether a tensor LR is filled in place (else replaced by the tensor its
    formula returns)."""
    given: Any = torch.tensor(1.0, dtype=torch.float64)  # (older torch annotates lr as a float)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=given)
    lr = opt.param_groups[0]["lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _tl.CosineAnnealingWarmRestarts(opt, T_0=1)
        sched.T_cur = 5
        sched.step()
    return sched.T_cur == 0, opt.param_groups[0]["lr"] is lr


# CosineAnnealingWarmRestarts: older torch subtracts T_i once from a T_cur past a restart (a T_cur more than a
# period past, after a resume with last_epoch, stays past it) and assigns the LRs, tensors included.
WARM_RESTARTS_MODULO, WARM_RESTARTS_FILL = _warm_restarts()

# SWALR names its strategy (``_anneal_strategy``, state_dict without the bound anneal_func); older torch keeps
# only ``anneal_func`` (one of two static methods), which state_dict then carries.
SWA_STRATEGY_ATTR: bool = callable(getattr(_swa.SWALR, "_set_anneal_func", None))
SWA_STRATEGY_KEY: str = "_anneal_strategy" if SWA_STRATEGY_ATTR else "anneal_func"


def _clones(groups: Sequence[dict[str, Any]]) -> list[Any]:
    return [g["lr"].clone() if isinstance(g["lr"], Tensor) else g["lr"] for g in groups]


def _aliases(groups: Sequence[dict[str, Any]]) -> list[Any]:
    return [g["lr"] for g in groups]


# torch's list of the groups' LRs (_last_lr, a kept get_lr): clones of tensors, or the tensors themselves.
group_lrs = _clones if CLONES_LRS else _aliases

# One fused clone of many tensors (older torch has no _foreach_clone: one clone each).
_FOREACH_CLONE: Any = getattr(torch, "_foreach_clone", None)


def clone_all(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Independent copies of ``tensors``, as torch's clones are."""
    if _FOREACH_CLONE is not None:
        return list(_FOREACH_CLONE(tensors))
    return [t.clone() for t in tensors]


def base_lrs_alias_groups(base_lrs: Sequence[Any], groups: Sequence[dict[str, Any]]) -> bool:
    """Where torch's lists alias tensors: a base LR that is a group's LR tensor itself (SequentialLR puts each
    group's initial_lr there), which torch's formulas then read as it changes. The core compiles base LRs as
    numbers, so such a scheduler runs torch's own code."""
    if CLONES_LRS:
        return False
    ptrs = {g["lr"].data_ptr() for g in groups if isinstance(g.get("lr"), Tensor)}
    return bool(ptrs) and any(isinstance(b, Tensor) and b.data_ptr() in ptrs for b in base_lrs)


def tensor_base_stamp(base_lrs: Sequence[Any]) -> tuple[Any, ...] | None:
    """Where torch's lists alias tensors, a stamp of the base LR tensors as the core compiles them (each one's
    version counter, which an in-place change moves): torch's formulas read the tensors as they are at
    each step, and someone else may change them (SequentialLR makes them the groups' LRs for a while; a state dict
    loaded as is shares another scheduler's). None where nothing can change under the core (floats, or a torch
    that clones)."""
    if CLONES_LRS:
        return None
    try:
        return tuple([b._version for b in base_lrs])  # (the list itself is compared by the program's compile)
    except AttributeError:  # floats among them
        if not any(isinstance(b, Tensor) for b in base_lrs):
            return None
        return tuple(b._version if isinstance(b, Tensor) else b for b in base_lrs)


def foreign_base_lrs(base_lrs: Sequence[Any], groups: Sequence[dict[str, Any]]) -> bool:
    """Base LR tensors that are not the groups' own ``initial_lr`` (a state dict loaded as is): another scheduler
    may change them between any two steps, so every step compares the stamp."""
    return any(isinstance(b, Tensor) and (g >= len(groups) or b is not groups[g].get("initial_lr"))
               for g, b in enumerate(base_lrs))


def torch_update_lr(scheduler: Any, epoch: Any = None) -> None:
    """torch's step() after its warnings and counter, for a rule that runs torch's own get_lr: torch's
    ``_update_lr``, or on a torch without one the same lines of its step()."""
    if UPDATE_LR:
        _TORCH_UPDATE_LR(scheduler, epoch)
        return
    scheduler._get_lr_called_within_step = True
    try:
        if epoch is None:
            scheduler.last_epoch += 1
            values = scheduler.get_lr()
        else:
            scheduler.last_epoch = epoch
            closed = getattr(scheduler, "_get_closed_form_lr", None)
            values = closed() if closed is not None else scheduler.get_lr()
    finally:
        scheduler._get_lr_called_within_step = False  # as torch's _enable_get_lr_call leaves it
    for group, lr in zip(scheduler.optimizer.param_groups, values):
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr.item() if isinstance(lr, Tensor) else lr)
        else:
            group["lr"] = lr
    scheduler._last_lr = group_lrs(scheduler.optimizer.param_groups)


def milestone_step(scheduler: Any) -> None:
    """SequentialLR's step of the scheduler that takes over at a milestone, as the installed torch does it."""
    if UPDATE_LR and callable(getattr(scheduler, "_update_lr", None)):
        scheduler._update_lr(0)
    else:
        scheduler.step(0)


def swa_anneal_strategy(scheduler: Any) -> str | None:
    """SWALR's ``"cos"`` or ``"linear"``; None for a strategy the core does not know (an anneal_func set by
    hand, or a state missing it), whose steps then run torch's own code."""
    if SWA_STRATEGY_ATTR:
        strategy = scheduler.__dict__.get("_anneal_strategy")
        return strategy if strategy in ("cos", "linear") else None
    fn = scheduler.__dict__.get("anneal_func")
    if fn is not None and fn is _SWA_ANNEAL["cos"]:
        return "cos"
    if fn is not None and fn is _SWA_ANNEAL["linear"]:
        return "linear"
    return None


# SWALR's anneal functions (static methods); None where a torch lacks one (then no strategy maps to it)
_SWA_ANNEAL: dict[str, Any] = {"cos": getattr(_swa.SWALR, "_cosine_anneal", None),
                               "linear": getattr(_swa.SWALR, "_linear_anneal", None)}


def swa_anneal(strategy: str | None) -> Any:
    """SWALR's anneal function of ``strategy`` (torch's own, or its formula where torch lacks it)."""
    fn = _SWA_ANNEAL.get(strategy or "cos")
    if fn is not None:
        return fn
    return (lambda t: t) if strategy == "linear" else (lambda t: (1 - math.cos(math.pi * t)) / 2)


# CyclicLR's own scale functions (static methods it binds to _scale_fn_ref); None where a torch lacks one
_CYCLIC_SCALE: dict[str, Any] = {name: getattr(_tl.CyclicLR, f"_{name}_scale_fn", None)
                                 for name in ("triangular", "triangular2", "exp_range")}


def cyclic_scale(ref: Any) -> tuple[str, float] | None:
    """``(mode, gamma)`` where ``ref`` (CyclicLR's _scale_fn_ref) is torch's own scale function for mode (exp_range's
    with its gamma bound), None for any other function."""
    if ref is None:
        return None
    for mode in ("triangular", "triangular2"):
        if ref is _CYCLIC_SCALE[mode]:
            return mode, 0.0
    exp_range = _CYCLIC_SCALE["exp_range"]
    if (exp_range is not None and isinstance(ref, functools.partial) and ref.func is exp_range
            and len(ref.args) == 1 and not ref.keywords):
        return "exp_range", float(ref.args[0])
    return None


_FOREACH_NORM: Any = getattr(torch, "_foreach_norm", None)


def foreach_norm(tensors: list[Tensor], ord: int, dtype: torch.dtype) -> list[Tensor]:
    """Each tensor's norm of order ``ord``, computed in ``dtype``: one fused kernel where torch has
    _foreach_norm, else one vector_norm each."""
    if _FOREACH_NORM is not None:
        return list(_FOREACH_NORM(tensors, ord, dtype=dtype))
    return [torch.linalg.vector_norm(t, ord, dtype=dtype) for t in tensors]


_FOREACH_COPY: Any = getattr(torch, "_foreach_copy_", None)


def copy_all(dst: Sequence[Tensor], src: Sequence[Tensor]) -> None:
    """``dst[i].copy_(src[i])`` for every i, fused where torch has _foreach_copy_."""
    if _FOREACH_COPY is not None:
        _FOREACH_COPY(dst, src)
        return
    for d, s in zip(dst, src):
        d.copy_(s)


# ---- the optimizer-step wrapper torch's LRScheduler installs ------------------------------------------------

# torch marks its wrapper of ``optimizer.step`` with this attribute, and the wrapper sets ``optimizer._opt_called``
# (its call-order warning reads both; the same names from 2.4 to 2.14).
STEP_WRAPPED_ATTR = "_wrapped_by_lr_sched"
OPT_CALLED_ATTR = "_opt_called"


def step_wrapped(step: Any) -> bool:
    """Whether ``optimizer.step`` is a scheduler's wrapper (torch's or one made like it)."""
    return hasattr(step, STEP_WRAPPED_ATTR)  # (as torch's own test reads it)


def optimizer_stepped(optimizer: Any) -> bool:
    """Whether the wrapper saw ``optimizer.step()`` called."""
    return bool(getattr(optimizer, OPT_CALLED_ATTR, False))


def mark_step_wrapper(wrapper: Any) -> None:
    setattr(wrapper, STEP_WRAPPED_ATTR, True)


def mark_optimizer_stepped(optimizer: Any) -> None:
    setattr(optimizer, OPT_CALLED_ATTR, True)


# ---- dynamo (torch.compile, torchsched._compile) -------------------------------------------------------

def dynamo_substitutes_methods() -> bool:
    """Whether dynamo takes a substitute for a C method called on an object (``sched.step()``), not only for a C
    function: read off dynamo's own code (torch 2.13 does, 2.9 does not). Called lazily: it imports dynamo."""
    try:
        from torch._dynamo.variables.user_defined import UserDefinedObjectVariable
        return "is_polyfilled_callable" in UserDefinedObjectVariable.call_method.__code__.co_names
    except (ImportError, AttributeError):
        return False


try:  # private in torch (what torch._dynamo.skip uses; 2.9 has it, 2.4 not)
    from torch._C._dynamo.eval_frame import (  # type: ignore[attr-defined,import-not-found,unused-ignore]
        _FrameAction, _FrameExecStrategy, set_code_exec_strategy as _set_code_exec_strategy)
    _RUN_AS_IS: Any = _FrameExecStrategy(_FrameAction.SKIP, _FrameAction.SKIP)
except (ImportError, AttributeError, TypeError):
    _RUN_AS_IS = None

# Whether dynamo can be told to run a function's frames as they are, without compiling them.
CAN_RUN_AS_IS: bool = _RUN_AS_IS is not None


def set_run_as_is(code: Any) -> None:
    """Dynamo runs frames of ``code`` without compiling them (only where CAN_RUN_AS_IS)."""
    _set_code_exec_strategy(code, _RUN_AS_IS)


# ---- CUDA ----------------------------------------------------------------------------------------------

# The current stream's cudaStream_t as an integer, without building a Stream object (the hot path); None where
# the installed torch lacks it (then torch.cuda.current_stream(device).cuda_stream).
raw_current_stream: Any = getattr(torch._C, "_cuda_getCurrentRawStream", None)


# ---- warnings: where torch's own say they come from ----------------------------------------------------

CALL_ORDER, OVERRIDDEN, EPOCH, PLATEAU_EPOCH = "call order", "overridden", "epoch", "plateau epoch"


@functools.cache
def _torch_warning_sites() -> dict[str, tuple[str, int] | None]:
    """Per warning of torch's step(), where torch reports it: None where it names the caller of step() (a
    stacklevel of 2), else torch's own (filename, lineno). Read once from torch's StepLR and ReduceLROnPlateau on a
    tiny optimizer."""
    sites: dict[str, tuple[str, int] | None] = {}

    def record(kind: str, fn: Any) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
        w = next((x for x in caught if issubclass(x.category, UserWarning)), None)
        sites[kind] = None if w is None or w.filename == __file__ else (w.filename, w.lineno)

    def scheduler(overridden: bool = False) -> Any:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        s = _tl.StepLR(opt, 1)
        if overridden:
            opt.step = lambda *a, **k: None  # type: ignore[method-assign]
        return s

    try:
        early = scheduler()
        record(CALL_ORDER, lambda: early.step())
        record(OVERRIDDEN, lambda: scheduler(overridden=True).step())
        late = scheduler()
        late.optimizer.step()
        late.step()
        record(EPOCH, lambda: late.step(3))
        plateau = _tl.ReduceLROnPlateau(late.optimizer)  # its own step() warns from its own line
        record(PLATEAU_EPOCH, lambda: plateau.step(1.0, 3))
    except Exception:  # pragma: no cover - a torch whose StepLR cannot run here: name the caller
        return {}
    return sites


def warn_like_torch(kind: str, message: str, stacklevel: int) -> None:
    """Warns as torch's step() does: naming the caller of step() (``stacklevel`` counted from the caller of this
    function), or torch's own line where the installed torch names that."""
    site = _torch_warning_sites().get(kind)
    if site is None:
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
        return
    filename, lineno = site
    registry = vars(_tl).setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, UserWarning, filename, lineno, module=_tl.__name__, registry=registry,
                           module_globals=vars(_tl))

