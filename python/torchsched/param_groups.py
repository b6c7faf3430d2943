"""``param_groups(model, lr=...)``: param groups with layer-wise LR decay and the usual no-weight-decay split.

Depth: the model's own parameters (a ``cls_token``, a position embedding) and its first child are depth 0;
each following child is one deeper, in registration order (the order ``forward`` usually runs them).
A child that is an ``nn.Sequential`` or ``nn.ModuleList`` is opened one level, so ``blocks[3]`` is one
layer (whatever it holds); children without trainable parameters (activations, dropout) take no depth.
Pass ``depth=`` to decide otherwise.

With ``layer_decay=d`` a parameter at depth k gets the LR multiplier ``d ** (depth_max - k)``: the last
layer trains at the full LR, each earlier one ``d`` times slower. The multiplier is stored in each group's
``'lr_multiplier'`` key, which :func:`torchsched.wrap` reads, and each group's ``'lr'`` is ``lr``. A plain
torch optimizer ignores ``'lr_multiplier'``: pass ``scale_lr=True`` to fold the multiplier into ``'lr'``
instead (then wrap() must not apply it again, and does not: the key is left out).

No weight decay for biases and normalization weights: a parameter named ``bias``, or owned by a norm layer
(BatchNorm, LayerNorm, GroupNorm, InstanceNorm, LocalResponseNorm, RMSNorm) lands in a group with
``weight_decay=0``. ``no_decay`` takes parameter names (shell patterns matched against the attribute name
and the full dotted name) and module types.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Iterable

import torch
from torch import nn

from . import _validate as check
from .optim import MULTIPLIER_KEY

__all__ = ["param_groups", "layer_depths", "NORM_LAYERS"]

#: Module types whose parameters get no weight decay by default.
NORM_LAYERS: tuple[type[nn.Module], ...] = tuple(
    t for t in (
        nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
        nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, getattr(nn, "RMSNorm", None),
    ) if t is not None
)

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def _units(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    """The model's children in order, with each ``nn.Sequential``/``nn.ModuleList`` child opened one level
    (its items are the layers: a ``ModuleList`` of ``Sequential`` blocks gives one layer per block)."""
    for name, child in model.named_children():
        if isinstance(child, _CONTAINERS):
            for item_name, item in child.named_children():
                yield f"{name}.{item_name}", item
        else:
            yield name, child


def layer_depths(model: nn.Module) -> dict[str, int]:
    """Each trainable parameter's depth (see the module docstring), by its ``named_parameters`` name."""
    depths: dict[str, int] = {}
    for name, p in model.named_parameters(recurse=False):
        if p.requires_grad:
            depths[name] = 0
    level = 0
    for prefix, unit in _units(model):
        names = [f"{prefix}.{n}" for n, p in unit.named_parameters() if p.requires_grad]
        names = [n for n in names if n not in depths]  # shared (tied) parameters keep their first depth
        if not names:
            continue
        for n in names:
            depths[n] = level
        level += 1
    return depths


def _owners(model: nn.Module) -> dict[str, nn.Module]:
    owners: dict[str, nn.Module] = {}
    for mod_name, mod in model.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            owners.setdefault(f"{mod_name}.{p_name}" if mod_name else p_name, mod)
    return owners


def param_groups(model: nn.Module, *, lr: float, layer_decay: float | None = None, weight_decay: float = 0.0,
                 no_decay: Iterable[str | type[nn.Module]] = ("bias", *NORM_LAYERS),
                 depth: Callable[[str, torch.nn.Parameter], int] | None = None,
                 scale_lr: bool = False) -> list[dict[str, Any]]:
    """Param groups for ``model``: split by depth (with ``layer_decay``) and by weight decay.

    Args:
        model: the module; only parameters with ``requires_grad`` are included, each once.
        lr: every group's ``'lr'`` (the base LR :func:`torchsched.wrap` scales).
        layer_decay: in (0, 1]: a parameter at depth k gets multiplier ``layer_decay ** (depth_max - k)``.
            None: no depth split (two groups at most).
        weight_decay: the ``'weight_decay'`` of the decayed groups (the others get 0).
        no_decay: parameter-name patterns and module types whose parameters get no weight decay.
        depth: ``depth(name, param) -> int`` instead of the registration-order depth.
        scale_lr: fold the multiplier into ``'lr'`` (for a plain torch optimizer) instead of
            ``'lr_multiplier'``.

    Returns:
        A list of group dicts ordered by depth, decayed before non-decayed, with keys ``params``, ``name``
        (``"layer{k}"`` or ``"layer{k}.no_decay"``; ``"decay"``/``"no_decay"`` without ``layer_decay``),
        ``lr``, ``weight_decay``, ``depth`` and ``lr_multiplier`` (unless ``scale_lr``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    base = check.non_negative("lr", lr)
    wd = check.non_negative("weight_decay", weight_decay)
    decay_factor = None
    if layer_decay is not None:
        decay_factor = check.in_interval("layer_decay", layer_decay, 0, 1, low_open=True)
    patterns: list[str] = []
    types: list[type] = []
    for item in no_decay:
        if isinstance(item, str):
            patterns.append(item)
        elif isinstance(item, type):
            types.append(item)
        else:
            raise TypeError(f"no_decay entries must be name patterns (str) or module types, got {item!r}")

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    owners = _owners(model)
    if decay_factor is None:
        depths = {n: 0 for n, _ in named}
    elif depth is None:
        depths = layer_depths(model)
    else:
        depths = {}
        for n, p in named:
            depths[n] = check.integer(f"depth({n!r}, ...)", depth(n, p))
    depth_max = max(depths[n] for n, _ in named)

    def is_no_decay(name: str) -> bool:
        attr = name.rsplit(".", 1)[-1]
        if any(fnmatch.fnmatchcase(attr, pat) or fnmatch.fnmatchcase(name, pat) for pat in patterns):
            return True
        return bool(types) and isinstance(owners.get(name), tuple(types))

    buckets: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for n, p in named:
        buckets.setdefault((depths[n], is_no_decay(n)), []).append(p)

    groups = []
    for (k, nd) in sorted(buckets):
        mult = 1.0 if decay_factor is None else decay_factor ** (depth_max - k)
        if decay_factor is None:
            name = "no_decay" if nd else "decay"
        else:
            name = f"layer{k}.no_decay" if nd else f"layer{k}"
        group: dict[str, Any] = {"params": buckets[(k, nd)], "name": name, "depth": k,
                                 "weight_decay": 0.0 if nd else wd}
        if scale_lr:
            group["lr"] = base * mult
        else:
            group["lr"] = base
            group[MULTIPLIER_KEY] = mult
        groups.append(group)
    return groups


