"""Drop-in twins of every ``torch.optim.lr_scheduler`` class, plus ``torch.optim.swa_utils.SWALR``.

Replace ``from torch.optim import lr_scheduler`` with ``from torchsched import lr_scheduler`` and nothing
else changes: the same constructor signatures and defaults, argument checks and errors (construction is
torch's own; "Arguments and state" below says what is refused earlier), the same LR sequences in torch's
order of floating-point operations, the same warnings, attributes and ``state_dict`` contents, the same
compounding when two schedulers step one optimizer, the same respect for an LR edited by hand between steps. Every class subclasses its torch counterpart (and
so ``torch.optim.lr_scheduler.LRScheduler``): ``isinstance`` checks in Lightning, Transformers and
Accelerate pass.

What changes is where the work runs. Each scheduler compiles its rule into a core program once; then
``scheduler.step()`` is one call into the compiled core that advances torch's counters and evaluates and
stores every param group's LR (and momentum, for ``CyclicLR``/``OneCycleLR``), whatever the number of
groups. Exceptions, said again in each class: Python callables (``LambdaLR``/``MultiplicativeLR`` lambdas, a
custom ``CyclicLR`` ``scale_fn``) run in Python, called from the core in torch's order; a
:mod:`torchsched.schedules` spec passed as the lambda runs in the core.

Every step makes one decision (``_step.decide_step``: torch's closed form, the LRs kept, or the rule at the
scheduler's clock, after recompiling when the program no longer describes the groups), then writes it where
the LRs live:

* Python float LRs: in the param-group dicts, by the core.
* Tensor LRs on the CPU: the scheduler owns them. At construction each group's ``"lr"`` becomes a 0-d view into
  one float32/float64 buffer (same dtype and value; groups already holding consecutive views of one buffer keep
  theirs), which the core writes in place. ``initial_lr``, ``base_lrs`` and ``get_last_lr()`` hold copies, never
  aliases. A replaced ``group["lr"]`` (``optimizer.load_state_dict``) is noticed at the next step and bound the
  same way.
* Tensor LRs on one CUDA device (float32 or float64, one element, no grad), for a rule that is a pure core
  program: each group's ``"lr"`` becomes its own 0-d view into the LR buffer of a
  :class:`torchsched._cuda.CudaEngine`, and every ``step()`` is one kernel launch on the current stream, with no
  host sync. ``get_last_lr()`` and ``state_dict()["_last_lr"]`` are Python floats from the engine's float64 host
  mirror (torch's CUDA tensor clones would cost a sync to read). Values computed on the host (``step(epoch)``'s
  closed form, a ``SequentialLR`` switch, a fractional epoch) reach the device with one asynchronous copy from
  pinned memory. Chainable rules read the previous LR from the engine's float64 mirror, so an in-place edit of
  a CUDA LR tensor (``fill_``) is not seen, unlike the CPU path; a replaced tensor is, at the next step, which
  rebuilds the engine from the tensors' values (a sync, once; so does building it at construction or after
  ``load_state_dict``). ``CosineAnnealingWarmRestarts`` compiles its restarts into the device program (T_mult ==
  1: 32 periods, then back to the first: two launches, once every 32 periods). The classes are not meant to be
  captured in a CUDA graph (their bookkeeping runs in Python): capture :func:`torchsched.wrap` steps instead.
  The optimizer is not checked: use ``fused=True`` (or ``capturable=True``) optimizers, which read device LRs
  without ``.item()`` (see :func:`torchsched._cuda.check_optimizer_for_device_lrs`). Kept on the per-group path
  below: Python callables, momentum cycling (momenta are Python floats in the group dicts),
  ``MultiplicativeLR``, configurations on which torch raises, and ``ReduceLROnPlateau`` (its
  ``float(metrics)`` syncs anyway). A core built without CUDA warns once and keeps that path too.
* A CPU LR tensor in a group whose params are on a CUDA device raises ValueError (at construction, or at the step
  after it is put in): torch's fused CUDA kernels read it on the host, so a captured graph would freeze its value.
* Anything else (mixed floats and tensors, tensors that require grad, ...) takes the per-group path, as torch
  does: correct, O(groups) in Python. ``_make_stepper`` is where a device engine plugs in.

Numbers: float LRs and float64 LR tensors reproduce torch bit for bit (float64 arithmetic in torch's order).
float32 LR tensors reproduce torch bit for bit too: the core does torch's float32 arithmetic, rounding where torch
rounds.

Torch versions: each class follows the installed torch (2.4 and newer) where its schedulers changed: the initial
step's flag and its ``state_dict`` key, SWALR's strategy, SequentialLR's milestone step, where warnings point,
lists zipped strictly or not, CosineAnnealingWarmRestarts' restarts, ReduceLROnPlateau's ``default_min_lr``, and
whether ``get_last_lr()`` and base LRs alias the groups' LR tensors (older torch) or hold clones. Every such fact
is read off torch itself in ``torchsched._torch_compat``. Where the lists alias the groups' tensors, the twins keep the
user's tensors and fill them group by group as torch does (a single group's tensor is bound in place), and a
schedule whose base LRs torch reads as they change (SequentialLR makes them the groups' LRs) runs torch's code.

Group keys that torch reads at every step (``OneCycleLR``'s ``initial_lr``/``max_lr``/``min_lr`` and
``max_momentum``/``base_momentum``, ``SWALR``'s ``swa_lr``) are compiled into the program and compared at every
step in which the group dict changed: an edit recompiles before the next step, as torch would see it.

Arguments and state (checked in one place, ``_Core._check_hyperparameters``, at construction, when a parameter is
reassigned and when a state dict is loaded; never in the per-step path):

* torch's own constructor checks run first, with torch's errors.
* Every numeric hyperparameter (and the group keys torch computes with: ``swa_lr``, OneCycleLR's ``max_lr``, ...)
  must be a number torch's arithmetic takes. A string, ``None`` or a list raises ``TypeError`` at construction,
  naming the class and the argument (``"StepLR: gamma must be a real number, got '0.5' (str)"``): the type torch
  raises, usually later, once a step uses the value (a value torch never uses as a number, such as
  ``ConstantLR(total_iters='3')``, is refused too).
* A non-finite hyperparameter (NaN, an infinity), which torch accepts and turns into NaN or infinite LRs, is
  refused with ``ValueError`` (``"ExponentialLR: gamma must be finite, got inf"``); an integer too large for a
  float64 raises ``OverflowError``. ``step(epoch)`` refuses NaN (``ValueError``) and infinities
  (``OverflowError``) before anything changes, as ``math.floor`` would.
* A 0-d tensor hyperparameter makes torch's arithmetic return tensors of its dtype (float32 LRs stored into float
  groups); such a scheduler runs torch's own ``get_lr`` each step, so types and values are torch's. So do an
  optimizer without param groups (the core needs one), ``CyclicLR`` given tensor ``base_lr`` (torch aliases them
  with the group LRs) and a ``OneCycleLR`` pickled by an older torch (``anneal_func`` in place of
  ``_anneal_func_type``).
* ``load_state_dict`` is atomic: entries are checked first (a wrong type raises ``TypeError``, a non-finite number or
  a negative count ``ValueError``, a missing ``last_epoch``/``base_lrs`` a ``MissingStateKeyError``, both a
  ``KeyError`` and a ``ValueError``), and a load that fails anyway leaves every scheduler it touched (and the
  callable objects whose ``__dict__`` torch's load updates) exactly as it was.
* A step that would store an infinite or NaN LR (or one a float32 LR tensor cannot hold), which torch stores, is
  refused with ``torchsched._core.NonFiniteLRError`` (a ``ValueError`` naming the class, the group and the step);
  the LRs, ``last_epoch`` and ``_step_count`` stay as they were.
* Where torch's arithmetic raises (``ZeroDivisionError``, Python's ``OverflowError`` for ``gamma ** n``), the same
  error is raised at the same step, before the LRs change.

Limits: parameters are read when the scheduler is built, and again whenever one of them is reassigned
(``scheduler.gamma = 0.5``) or a state dict is loaded; an in-place edit of a list attribute
(``scheduler.base_lrs[0] = ...``) is picked up after reassigning the attribute or calling
``load_state_dict(state_dict())``: a list has no version to check cheaply, and its tensor items (the
``base_lrs`` of tensor LRs) can change in place.
"""

from __future__ import annotations

from .. import _compile
from ._base import EPOCH_DEPRECATION_WARNING, LRScheduler, _Core, _LastLR  # noqa: F401  (_LastLR: read by tests)
from ._classes import (
    ConstantLR, CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR, MultiStepLR, PolynomialLR,
    StepLR,
)
from ._composite import ChainedScheduler, SequentialLR
from ._cuda_stepper import _cuda_lr_target, _cuda_spec_ok, _CudaStepper, _make_stepper  # noqa: F401  (tests)
from ._cycles import SWALR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .plateau import ReduceLROnPlateau

__all__ = [
    "LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
    "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
    "ReduceLROnPlateau", "CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "SWALR",
]

# a traced step() is one custom op that runs the step (torch.compile; see torchsched._compile)
_compile.trace_scheduler_steps((_Core,), (ReduceLROnPlateau,),
                               (SequentialLR.step, ChainedScheduler.step, CosineAnnealingWarmRestarts.step))
_compile.run_as_is_from_core(_Core, "_python_step")  # what the C-level steps call
_compile.run_as_is_from_core(ReduceLROnPlateau, "_plateau_python_step")

for _cls in (LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
             SequentialLR, PolynomialLR, CosineAnnealingLR, ChainedScheduler, ReduceLROnPlateau, CyclicLR,
             CosineAnnealingWarmRestarts, OneCycleLR, SWALR, LRScheduler):
    _cls.__module__ = __name__
del _cls
