"""CUDA LR tensors and torch optimizers: which device params live on, the checks that an optimizer reads each
param group's LR from its own device tensor without a host sync, GradScaler's found_inf flag, and the binding
``wrap()`` drives a :class:`torchsched._cuda.CudaEngine` through.

torch silently falls back to ``.item()`` on several optimizer paths and shares one default ``lr`` tensor across
groups: :func:`check_optimizer_for_device_lrs` and :func:`replace_shared_lr_tensors` catch both. The names are
re-exported by :mod:`torchsched._cuda`.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

LR_DTYPES = (torch.float32, torch.float64)  # what an LR buffer may hold


# ---- devices ---------------------------------------------------------------------------------------

def _tensors_of(params: Any) -> list[torch.Tensor]:
    """Tensors from params, a param group dict, a list of groups, or an optimizer."""
    if isinstance(params, torch.optim.Optimizer):
        params = params.param_groups
    if isinstance(params, torch.Tensor):
        return [params]
    if isinstance(params, dict):
        params = params.get("params", [])
        return _tensors_of(params)
    out: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, dict):
            out.extend(_tensors_of(item))
        elif isinstance(item, torch.Tensor):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor):
            out.append(item[1])  # named_parameters()
        else:
            raise TypeError(f"params must hold tensors or param groups, got {type(item).__name__}")
    return out


def _params_device(params: Any) -> torch.device | None:
    devices: list[torch.device] = []
    for t in _tensors_of(params):
        if t.device not in devices:
            devices.append(t.device)
    if not devices:
        return None
    if len(devices) > 1:
        raise ValueError(f"params are on several devices ({', '.join(map(str, devices))}); one engine serves "
                         "one device: build one engine per device")
    return devices[0]


def resolve_device(device: Any = None, params: Any = None) -> torch.device:
    """The one CUDA device (with its index) of ``device`` and/or ``params``; ValueError when they are not on a
    single CUDA device or disagree."""
    pdev = _params_device(params) if params is not None else None
    if pdev is not None and pdev.type != "cuda":
        raise ValueError(f"params are on {pdev}, not on a CUDA device: the CUDA engine writes device memory "
                         "(for CPU params use torchsched.Engine, which writes CPU buffers)")
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
            raise TypeError(f"device must be a torch.device, a string or an index, got {device!r}")
        try:
            dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device {device!r} is not a device: {exc}") from None
        if dev.type != "cuda":
            raise ValueError(f"device must be a CUDA device, got {dev} (for CPU params use torchsched.Engine)")
        if pdev is not None:
            same = dev.index is None or dev.index == pdev.index
            if not same:
                raise ValueError(f"device={dev} but the params are on {pdev}: the LR buffer must live on the "
                                 "params' device")
            return pdev
        if dev.index is None:
            if not torch.cuda.is_available():
                raise RuntimeError(f"device={dev} names no index and torch sees no CUDA device (torch "
                                   f"{torch.__version__}, CUDA {torch.version.cuda})")
            dev = torch.device("cuda", torch.cuda.current_device())
        return dev
    if pdev is None:
        raise ValueError("pass device= or params= (the params' CUDA device holds the engine's state)")
    return pdev


# ---- GradScaler ------------------------------------------------------------------------------------

def scaler_found_inf(scaler: Any, optimizer: torch.optim.Optimizer, device: Any) -> torch.Tensor:
    """The float32 inf/NaN flag ``scaler`` recorded for ``optimizer`` on ``device``, to pass to
    :meth:`CudaEngine.advance`. Call it after ``scaler.step(optimizer)`` and before ``scaler.update()`` (which
    discards it). When the optimizer's params span several devices, it is the sum of their flags on ``device``
    (the optimizer skips if any is set). Reads the scaler's per-optimizer state (torch has no public accessor
    for it); no sync."""
    if not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}")
    if not scaler.is_enabled():
        raise ValueError("the GradScaler is disabled: it records no found_inf (advance without one)")
    states = getattr(scaler, "_per_optimizer_states", None)
    if states is None:  # pragma: no cover - a torch that changed GradScaler's internals
        raise TypeError("this torch.amp.GradScaler keeps no per-optimizer state that torchsched knows how to read")
    state = states.get(id(optimizer))
    per_device = {} if state is None else state.get("found_inf_per_device", {})
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    flag = per_device.get(dev)
    if flag is None:
        have = ", ".join(map(str, per_device)) or "none"
        raise ValueError(f"the scaler has no found_inf for this optimizer on {dev} (devices recorded: {have}); "
                         "call it after scaler.step(optimizer) and before scaler.update()")
    if len(per_device) > 1:
        # The optimizer skips when any of its devices found an inf (GradScaler sums the flags), so the
        # engine must read that sum, not its own device's flag. Async copies: no sync.
        flag = torch.stack([t.to(dev, non_blocking=True) for t in per_device.values()]).sum()
    return flag


# ---- optimizers ------------------------------------------------------------------------------------

_VERIFIED = "Adam, AdamW (fused=True or capturable=True), SGD (fused=True), Adagrad (fused=True)"


def _optimizer_kind(optimizer: Any) -> str | None:
    if isinstance(optimizer, torch.optim.Adam):  # AdamW subclasses Adam
        return "adam"
    if isinstance(optimizer, torch.optim.AdamW):  # pragma: no cover - older torch kept AdamW separate
        return "adam"
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, torch.optim.Adagrad):
        return "adagrad"
    return None


def check_group_flags(index: int, group: dict[str, Any], kind: str | None, cls_name: str, lr_dtype: Any, *,
                      capture: bool = False, allow_unverified: bool = False) -> None:
    """Raises when a param group on a CUDA device would not apply a device LR tensor without a host sync (or
    could not be captured). ``kind`` is ``"adam"``, ``"sgd"``, ``"adagrad"`` or None (another optimizer)."""
    where = f"param group {index} of {cls_name}"
    fused = bool(group.get("fused"))
    capturable = bool(group.get("capturable"))
    if kind is None:
        if allow_unverified:
            return
        raise TypeError(f"{where}: torchsched has not verified that {cls_name} applies a tensor LR on the device "
                        f"without calling .item(); verified: {_VERIFIED}. Pass allow_unverified=True to skip this "
                        "check at your own risk")
    if kind == "adam":
        if not fused and not capturable:
            foreach = group.get("foreach")
            path = ("foreach=True rejects a tensor LR unless capturable=True" if foreach else
                    "torch then takes its single-tensor path (it silently turns off foreach for a tensor LR), "
                    "which converts the LR with .item() for every parameter: a host sync per parameter per step, "
                    "and a value frozen into any captured graph")
            raise ValueError(f"{where} has fused={group.get('fused')!r} and capturable=False: {path}. Construct it "
                             "with fused=True (fastest) or capturable=True")
        if capture and not capturable:
            raise ValueError(f"{where} has capturable=False: torch's CUDA-graph capture health check "
                             "(Optimizer._accelerator_graph_capture_health_check) raises when step() is captured "
                             "unless every param group has capturable=True, fused or not. Construct it with "
                             "capturable=True (with fused=True for speed)")
    elif kind in ("sgd", "adagrad"):
        if not fused:
            detail = ("applies a tensor LR as alpha=-lr on both its single-tensor and foreach paths, which calls "
                      ".item()" if kind == "sgd" else
                      "converts a tensor LR with .item() on its single-tensor path (value=-clr) and, on its foreach "
                      "path, keeps its step counter on the host and derives each parameter's LR there")
            raise ValueError(f"{where} has fused={group.get('fused')!r}: torch {detail}, so the LR would cost a host "
                             "sync every step and be frozen into any captured graph. Construct it with fused=True")
    if fused and lr_dtype is not None and lr_dtype != torch.float32:
        raise TypeError(f"{where} is fused: torch's fused CUDA kernels read the LR tensor as float32, got {lr_dtype}; "
                        "use lr_dtype=torch.float32 in wrap(), dtype=torch.float32 for a CudaEngine")


def refuse_cpu_lr_for_cuda_params(index: int, lr: Any, param_device: torch.device | None, fix: str) -> None:
    """A CPU LR tensor with CUDA params is an error, not a fallback (wrap() and the lr_scheduler classes)."""
    if (isinstance(lr, torch.Tensor) and lr.device.type == "cpu" and param_device is not None
            and param_device.type == "cuda"):
        raise ValueError(f"param group {index}: lr is a CPU tensor but the params are on {param_device}. torch's "
                         "fused CUDA kernels read a CPU LR with .item() when step() is called, so a captured CUDA "
                         "graph would freeze the value it had at capture time (and every eager step would pay a "
                         f"host read). {fix}")


def check_group_lr(index: int, lr: Any, param_device: torch.device) -> None:
    """Raises when a group's ``lr`` is not a one-element LR tensor of its own on ``param_device``."""
    where = f"param group {index}"
    if not isinstance(lr, torch.Tensor):
        raise ValueError(f"{where}: lr is a Python {type(lr).__name__} ({lr!r}), so the optimizer never reads a device "
                         "LR; install the engine's LR tensors with replace_shared_lr_tensors(optimizer, engine)")
    refuse_cpu_lr_for_cuda_params(index, lr, param_device, f"Put the LR on {param_device} (the engine's lr_tensors())")
    if lr.device != param_device:
        raise ValueError(f"{where}: lr is on {lr.device} but the params are on {param_device}; torch's fused kernels "
                         "require the LR on the params' device")
    if lr.numel() != 1:
        raise ValueError(f"{where}: lr must have one element, got shape {tuple(lr.shape)}")
    if lr.dtype not in LR_DTYPES:
        raise TypeError(f"{where}: lr must be float32 or float64, got {lr.dtype}")
    if lr.requires_grad:
        raise ValueError(f"{where}: lr requires grad; a scheduled LR must not (torch takes a differentiable path)")


def _group_param_device(index: int, group: dict[str, Any]) -> torch.device | None:
    try:
        return _params_device(group.get("params", []))
    except ValueError as exc:
        raise ValueError(f"param group {index}: {exc}") from None


def check_optimizer_for_device_lrs(optimizer: torch.optim.Optimizer, engine: Any = None, *, capture: bool = False,
                                   allow_unverified: bool = False) -> None:
    """Raises a ValueError/TypeError naming the group and the fix when ``optimizer`` would not read each group's
    LR from its own device tensor without a host sync:

    * a group's ``lr`` is a Python number, a CPU tensor with CUDA params (its value would be frozen into a
      captured graph), a tensor on another device, or shared with another group;
    * a path on which torch calls ``.item()`` on a tensor LR: Adam/AdamW neither fused nor capturable, SGD or
      Adagrad not fused (torch falls back silently);
    * ``capture=True`` (the step will be captured in a CUDA graph) and Adam/AdamW without ``capturable=True``,
      which torch's capture health check demands;
    * a fused optimizer with a float64 LR (fused kernels read float32);
    * with ``engine``: a group whose ``lr`` is not that engine's view for the group.

    Groups whose params are on the CPU only need their own LR tensor (a CPU ``.item()`` is not a device sync).
    Optimizers other than Adam, AdamW, SGD and Adagrad raise TypeError unless ``allow_unverified=True``.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    groups = optimizer.param_groups
    kind = _optimizer_kind(optimizer)
    cls_name = type(optimizer).__name__
    views = _engine_views(engine, len(groups)) if engine is not None else None
    seen: dict[tuple[torch.device, int], int] = {}
    for i, group in enumerate(groups):
        lr = group.get("lr")
        device = _group_param_device(i, group)
        if isinstance(lr, torch.Tensor) and lr.device.type != "meta":  # meta tensors have no addresses
            ptr = (lr.device, lr.data_ptr())
            if ptr in seen:
                raise ValueError(f"param groups {seen[ptr]} and {i} share one LR tensor (torch's default lr= tensor is "
                                 "shared by every group), so one group's schedule would overwrite the other's; give "
                                 "each group its own with replace_shared_lr_tensors(optimizer, engine)")
            seen[ptr] = i
        if device is not None and device.type == "cuda":
            check_group_lr(i, lr, device)
            check_group_flags(i, group, kind, cls_name, lr.dtype if isinstance(lr, torch.Tensor) else None,
                              capture=capture, allow_unverified=allow_unverified)
        elif device is not None and isinstance(lr, torch.Tensor) and lr.device != device:
            raise ValueError(f"param group {i}: lr is on {lr.device} but the params are on {device}")
        if views is not None:
            view = views[i]
            if not (isinstance(lr, torch.Tensor) and lr.device == view.device and lr.data_ptr() == view.data_ptr()
                    and lr.dtype == view.dtype):
                raise ValueError(f"param group {i}: lr is not the engine's LR tensor for group {i}; call "
                                 "replace_shared_lr_tensors(optimizer, engine)")


def _engine_views(engine: Any, groups: int) -> list[torch.Tensor]:
    if isinstance(engine, torch.Tensor):
        if engine.dim() != 1 or engine.numel() != groups:
            raise ValueError(f"the LR buffer must be 1-d with one element per group ({groups}), got shape "
                             f"{tuple(engine.shape)}")
        if engine.dtype not in LR_DTYPES:
            raise TypeError(f"the LR buffer must be float32 or float64, got {engine.dtype}")
        return [engine[g] for g in range(groups)]
    if not hasattr(engine, "lr_tensors"):
        raise TypeError(f"engine must be a CudaEngine (or a 1-d LR buffer tensor), got {type(engine).__name__}")
    views = list(engine.lr_tensors())
    if len(views) != groups:
        raise ValueError(f"the engine has {len(views)} groups, the optimizer {groups}")
    return views


def replace_shared_lr_tensors(optimizer: torch.optim.Optimizer, engine: Any, *, capture: bool = False,
                              allow_unverified: bool = False) -> list[torch.Tensor]:
    """Gives each param group its own LR tensor: the engine's 0-d view for that group (``engine`` may also be a
    1-d LR buffer tensor). torch's ``lr=`` tensor default is one tensor shared by every group, so an engine
    writing per-group LRs must replace it.

    Checks first (and leaves the optimizer untouched on failure) that every group's params are on the engine's
    device and that the optimizer applies tensor LRs there without ``.item()`` (see
    :func:`check_optimizer_for_device_lrs`, whose other checks run once the tensors are in). Returns the
    installed tensors.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    groups = optimizer.param_groups
    views = _engine_views(engine, len(groups))
    kind = _optimizer_kind(optimizer)
    cls_name = type(optimizer).__name__
    for i, (group, view) in enumerate(zip(groups, views)):
        device = _group_param_device(i, group)
        if device is None:
            continue
        if device != view.device:
            if device.type == "cuda" and view.device.type == "cpu":
                raise ValueError(f"param group {i}: the LR buffer is on the CPU but the params are on {device}: a CPU "
                                 "LR tensor would be read with .item() by fused CUDA kernels and frozen into a captured "
                                 "graph; use a CudaEngine on the params' device")
            raise ValueError(f"param group {i}: params are on {device}, the engine's LR buffer on {view.device}")
        if device.type == "cuda":
            check_group_flags(i, group, kind, cls_name, view.dtype, capture=capture, allow_unverified=allow_unverified)
    for group, view in zip(groups, views):
        group["lr"] = view
    check_optimizer_for_device_lrs(optimizer, engine, capture=capture, allow_unverified=allow_unverified)
    return views


def params_of(optimizer: torch.optim.Optimizer) -> Iterable[torch.Tensor]:
    """Every parameter of an optimizer (to pass as ``params=`` to :class:`CudaEngine`)."""
    for group in optimizer.param_groups:
        yield from group["params"]


# ---- the wrap() binding ----------------------------------------------------------------------------

class CudaBinding:
    """Param groups driven by a :class:`CudaEngine`, with the interface of ``_engine.HostBinding`` (what
    ``wrap()`` calls): ``engine``, ``buffer``, ``views``, ``install(groups)``, ``advance(groups, found_inf)``,
    ``advancer(groups)`` and ``lrs()``.

    Tensor-LR groups get the engine's 0-d views; float-LR groups (a mixed optimizer) get the host mirror's
    floats after each advance. ``advance`` with a device ``found_inf`` (GradScaler with a fused optimizer)
    passes it to the kernel, which holds the schedule on the device; it returns True because the host cannot
    know whether the step was skipped without a sync (the engine is then :attr:`CudaEngine.stale`).
    """

    def __init__(self, engine: Any, tensor_groups: Sequence[bool]) -> None:  # a _cuda.CudaEngine
        if len(tensor_groups) != engine.groups:
            raise ValueError(f"{len(tensor_groups)} groups for an engine of {engine.groups}")
        self.engine = engine
        self.buffer: torch.Tensor = engine.lr_buffer
        views = engine.lr_tensors()
        self.views: list[torch.Tensor | None] = [v if t else None for v, t in zip(views, tensor_groups)]
        self._float_idx = [g for g, t in enumerate(tensor_groups) if not t]

    def install(self, groups: list[dict[str, Any]]) -> None:
        lrs = self.engine.lrs()
        for g, view in enumerate(self.views):
            groups[g]["lr"] = view if view is not None else lrs[g]

    def attach_signals(self, factors: torch.Tensor | None) -> None:
        self.engine.attach_signals(factors)

    def rewrite(self, groups: list[dict[str, Any]]) -> None:
        """The current step's LRs again (a signal moved a factor): one launch, no sync."""
        self.engine.write()
        self._set_floats(groups)

    def sync_signals(self) -> None:
        self.engine.sync_signals()

    def _set_floats(self, groups: list[dict[str, Any]]) -> None:
        if self._float_idx:
            lrs = self.engine.lrs()
            for g in self._float_idx:
                groups[g]["lr"] = lrs[g]

    def advance(self, groups: list[dict[str, Any]], found_inf: Any = None) -> bool:
        if found_inf is None:
            self.engine.advance()
        elif isinstance(found_inf, torch.Tensor) and found_inf.device.type == "cuda":
            self.engine.advance(found_inf)
        elif bool(found_inf):  # a host flag (not what a CUDA GradScaler makes): skipped, known on the host
            return False
        else:
            self.engine.advance()
        self._set_floats(groups)
        return True

    def advancer(self, groups: list[dict[str, Any]]) -> Any:
        """A no-argument callable advancing every group (one launch; no checks on the hot path)."""
        if not self._float_idx:
            return self.engine.advance

        def mixed() -> None:
            self.engine.advance()
            self._set_floats(groups)
        return mixed

    def lrs(self) -> list[float]:
        return self.engine.lrs()