"""The param groups as :func:`torchsched.wrap` sees them: which read a tensor LR, their labels and devices,
the per-group options (``multipliers=``, ``schedules=``), and the binding made for them (an engine and where
the LRs live)."""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import torch

from . import _validate as check
from ._engine import Engine, HostBinding
from .schedules import Schedule


# ---- which groups read a tensor LR ---------------------------------------------------------------

def _reads_tensor_lr(optimizer: torch.optim.Optimizer, group: Mapping[str, Any]) -> bool:
    """True when ``optimizer`` reads this group's LR as a tensor on the params' device: fused
    Adam/AdamW/SGD/Adagrad, or capturable Adam/AdamW (torch 2.x)."""
    fused = bool(group.get("fused"))
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return fused or bool(group.get("capturable"))
    if isinstance(optimizer, (torch.optim.SGD, torch.optim.Adagrad)):
        return fused
    return False


def _refuses_tensor_lr(optimizer: torch.optim.Optimizer, group: Mapping[str, Any]) -> bool:
    """True where torch refuses a tensor LR: Adam/AdamW with an explicit ``foreach=True``, neither fused nor
    capturable (torch 2.13; with ``foreach=None`` they fall back to the single-tensor loop instead, and every
    other ``torch.optim`` optimizer takes one, checked on the CPU)."""
    return (isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) and bool(group.get("foreach"))
            and not group.get("capturable") and not group.get("fused"))


def _foreign_on_device(binding: Any, groups: list[dict[str, Any]]) -> int | None:
    """``HostBinding.foreign`` for a device binding, without reading device memory (no sync): the group
    whose ``'lr'`` is not the binding's LR tensor, or not the float it stored."""
    lrs = binding.lrs()
    for g, (group, view) in enumerate(zip(groups, binding.views)):
        lr = group.get("lr")
        if (lr is not view) if view is not None else (type(lr) is not float or lr != lrs[g]):
            return g
    return None


def _group_label(index: int, group: Mapping[str, Any]) -> str:
    name = group.get("name")
    return f"param group {index} ({name!r})" if isinstance(name, str) else f"param group {index}"


def _group_device(index: int, group: Mapping[str, Any]) -> torch.device:
    devices = {p.device for p in group["params"]}
    if len(devices) > 1:
        raise ValueError(f"{_group_label(index, group)} has params on several devices {sorted(map(str, devices))}; "
                         "a tensor LR lives on one device")
    return devices.pop() if devices else torch.device("cpu")


def _lr_number(name: str, value: Any) -> float:
    """A base LR or a multiplier: a finite number >= 0, or a one-element tensor holding one."""
    return check.non_negative(name, check.scalar(name, value))


def _make_binding(schedules: Sequence[Schedule], base_lrs: Sequence[float], multipliers: Sequence[float], *,
                  step: int, tensor_groups: Sequence[bool], devices: Sequence[torch.device],
                  dtype: torch.dtype) -> Any:
    """The one place a wrapper's binding (its engine and LR stores) is made: every construction, ``add_param_group`` and
    ``load_state_dict`` goes through here.

    Float-LR groups are always driven from the host (the LR is a Python float whatever the params' device).
    Tensor-LR groups need their LR tensor on the params' device: CPU params get the host engine, CUDA params
    the CUDA engine (one kernel launch per step, LR tensors in device memory). A CPU LR tensor with CUDA
    params is never made: fused CUDA kernels would read it with ``.item()``, or freeze it into a graph.
    """
    cuda = sorted({str(d) for t, d in zip(tensor_groups, devices) if t and d.type == "cuda"})
    other = sorted({str(d) for t, d in zip(tensor_groups, devices) if t and d.type not in ("cpu", "cuda")})
    if other:
        raise NotImplementedError(f"tensor LRs on {other[0]} are not supported (CPU and CUDA are)")
    if not cuda:
        engine = Engine(list(schedules), list(base_lrs), list(multipliers), step=step)
        return HostBinding(engine, tensor_groups, dtype)
    cpu = [g for g, (t, d) in enumerate(zip(tensor_groups, devices)) if t and d.type == "cpu"]
    if len(cuda) > 1 or cpu:
        raise ValueError(f"tensor-LR param groups span {cuda + ['cpu'] * bool(cpu)}: one engine drives one device; "
                         "wrap one optimizer per device")
    from ._cuda import CudaBinding, CudaEngine

    cuda_engine = CudaEngine(list(schedules), list(base_lrs), list(multipliers), step=step, device=cuda[0],
                             dtype=dtype)
    return CudaBinding(cuda_engine, tensor_groups)


def _engine_step(binding: Any) -> int:
    """The schedule's step; a CUDA engine first copies it back once (graph replays are invisible to Python)."""
    engine = binding.engine
    if getattr(engine, "stale", False):
        engine.resync()
    return int(engine.step)


# ---- option resolution ---------------------------------------------------------------------------

def _check_keys(option: str, spec: Mapping[Any, Any], groups: Sequence[Mapping[str, Any]]) -> None:
    names = [g.get("name") for g in groups]
    seen: dict[int, Any] = {}
    for key in spec:
        if isinstance(key, bool):
            raise TypeError(f"{option} key {key!r} must be a group index (int) or a group name (str)")
        if isinstance(key, numbers.Integral):
            if not 0 <= int(key) < len(groups):
                raise ValueError(f"{option} has key {key!r}, but the optimizer has param groups 0..{len(groups) - 1}")
            hits = [int(key)]
        elif isinstance(key, str):
            hits = [i for i, n in enumerate(names) if n == key]
            if not hits:
                known = [n for n in names if isinstance(n, str)]
                raise ValueError(f"{option} has key {key!r}, which names no param group "
                                 f"(group names: {known or 'none'}; use group indices or give groups a 'name')")
        else:
            raise TypeError(f"{option} key {key!r} must be a group index (int) or a group name (str)")
        for i in hits:
            if i in seen:
                raise ValueError(f"{option} gives {_group_label(i, groups[i])} twice (keys {seen[i]!r} and {key!r})")
            seen[i] = key


def _lookup(option: str, spec: Any, index: int, group: Mapping[str, Any]) -> Any:
    """The value ``spec`` gives group ``index``, or None when it gives none."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        if index in spec:
            return spec[index]
        name = group.get("name")
        if isinstance(name, str) and name in spec:
            return spec[name]
        return None
    if callable(spec) and not isinstance(spec, Schedule):
        return spec(index, group)
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        return spec[index] if index < len(spec) else None
    raise TypeError(f"{option} must be a dict, a list or a callable(group_index, group), got {type(spec).__name__}")


def _check_spec(option: str, spec: Any, groups: Sequence[Mapping[str, Any]]) -> None:
    if spec is None:
        return
    if isinstance(spec, Mapping):
        _check_keys(option, spec, groups)
    elif isinstance(spec, (Schedule, str, bytes)) or not (callable(spec) or isinstance(spec, Sequence)):
        raise TypeError(f"{option} must be a dict, a list or a callable(group_index, group), got {spec!r}")
    elif isinstance(spec, Sequence) and len(spec) != len(groups):
        raise ValueError(f"{option} has {len(spec)} entries for {len(groups)} param groups")


def check_state_entry(ours: Any, count: int, key_name: str, version_read: int) -> dict[str, Any]:
    """A wrapper state dict's own entry, checked whole before anything is loaded: step, base LRs and
    multipliers (one per group), saved schedules, signal-rule state."""
    where = f"state_dict['{key_name}']"
    if not isinstance(ours, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(ours).__name__}")
    missing = [k for k in ("version", "step", "base_lrs", "multipliers") if k not in ours]
    if missing:
        raise ValueError(f"{where} lacks {missing}")
    version = ours["version"]
    if type(version) is not int or version != version_read:  # noqa: E721 - not a bool, not a tensor
        raise ValueError(f"{where}['version'] is {check.shown(version)}; this torchsched reads version "
                         f"{version_read} (saved by a newer torchsched, or not by torchsched)")
    out: dict[str, Any] = {"step": check.counter_step(f"{where}['step']", ours["step"])}
    saved = ours.get("schedules")
    if saved is not None and not (isinstance(saved, (list, tuple)) and all(isinstance(x, str) for x in saved)):
        raise ValueError(f"{where}['schedules'] must be a list of strings, got {check.shown(saved)}")
    out["schedules"] = saved
    out["signals"] = ours.get("signals")
    for key in ("base_lrs", "multipliers"):
        values = ours[key]
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{where}['{key}'] must be a list, got {check.shown(values)}")
        if len(values) != count:
            raise ValueError(f"{where}['{key}'] has {len(values)} entries for {count} param groups")
        out[key] = [_lr_number(f"{where}['{key}'][{i}]", v) for i, v in enumerate(values)]
    return out
