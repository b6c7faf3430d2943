"""``param_groups(model, lr=...)``: param groups with layer-wise LR decay and the usual no-weight-decay split.

Two conventions decide each parameter's layer id (its depth) and which parameters get no weight decay;
``convention="auto"`` (the default) takes ``"timm"`` for a model that declares its layers the way timm's
models do (a ``group_matcher()`` method), and ``"registration"`` otherwise.

``"timm"``: timm's ``timm.optim.param_groups_layer_decay`` (itself after BEiT's layer-wise decay), reproduced
exactly, as ``timm.optim.create_optimizer_v2(model, ..., layer_decay=d)`` groups a model:

- layer ids from the model's ``group_matcher(coarse=False)`` regexes, ranked as timm's ``group_with_matcher``
  ranks them: for a ViT the stem (``cls_token``, ``pos_embed``, ``patch_embed``) is layer 0, ``blocks.i`` is
  layer i + 1, the final ``norm`` joins the last block, and the head (matched by nothing) is the last layer.
  A model without ``group_matcher()`` is split as timm's ``auto_group_layers`` splits it (runs of 12
  parameters, the ``pretrained_cfg['classifier']`` head last);
- no weight decay for every parameter with ``ndim <= 1`` (biases, norm weights, LayerScale gammas) and for
  the names that ``model.no_weight_decay()`` returns (shell patterns, matched against the full name); without
  ``layer_decay``, also for names ending in ``.bias`` (timm's ``param_groups_weight_decay``).

``"registration"``: torchsched's own rule for models that declare no layers (it follows no external source).
The model's own parameters and its first child are depth 0; each following child is one deeper, in
registration order (the order ``forward`` usually runs them). A child that is an ``nn.Sequential`` or
``nn.ModuleList`` is opened one level, so ``blocks[3]`` is one layer (whatever it holds); children without
trainable parameters (activations, dropout) take no depth. No weight decay for parameters named ``bias``,
parameters owned by a norm layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, LocalResponseNorm,
RMSNorm), and the names ``model.no_weight_decay()`` returns, if the model has that method.

``depth=`` replaces the convention's layer ids, ``no_decay=`` its no-weight-decay set.

With ``layer_decay=d`` a parameter at depth k gets the LR multiplier ``d ** (depth_max - k)``: the last
layer trains at the full LR, each earlier one ``d`` times slower. The multiplier is stored in each group's
``'lr_multiplier'`` key, which :func:`torchsched.wrap` reads, and each group's ``'lr'`` is ``lr``. A plain
torch optimizer ignores ``'lr_multiplier'``: pass ``scale_lr=True`` to fold the multiplier into ``'lr'``
instead (then wrap() must not apply it again, and does not: the key is left out).
"""

from __future__ import annotations

import collections.abc
import fnmatch
import re
from collections import defaultdict
from itertools import chain
from typing import Any, Callable, Iterable, Union

import torch
from torch import nn

from . import _validate as check
from .optim import MULTIPLIER_KEY

__all__ = ["param_groups", "layer_depths", "NORM_LAYERS", "CONVENTIONS"]

#: Module types whose parameters get no weight decay under the ``"registration"`` convention.
NORM_LAYERS: tuple[type[nn.Module], ...] = tuple(
    t for t in (
        nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
        nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, getattr(nn, "RMSNorm", None),
    ) if t is not None
)

#: The values of ``convention=``.
CONVENTIONS = ("auto", "timm", "registration")

#: A ``no_decay`` entry: a shell pattern, a module type, or ``predicate(name, param) -> bool``.
NoDecay = Union[str, type, Callable[[str, torch.nn.Parameter], bool]]

_CONTAINERS = (nn.Sequential, nn.ModuleList)
# timm's MATCH_PREV_GROUP: a group_matcher suffix that merges a match into the layer ranked before it.
_MATCH_PREV_GROUP = 99999.0


def _resolve(model: nn.Module, convention: str) -> str:
    check.choice("convention", convention, CONVENTIONS)
    if convention == "auto":
        return "timm" if callable(getattr(model, "group_matcher", None)) else "registration"
    return convention


# ---- "registration" ----------------------------------------------------------------------------------

def _units(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    """The model's children in order, with each ``nn.Sequential``/``nn.ModuleList`` child opened one level
    (its items are the layers: a ``ModuleList`` of ``Sequential`` blocks gives one layer per block)."""
    for name, child in model.named_children():
        if isinstance(child, _CONTAINERS):
            for item_name, item in child.named_children():
                yield f"{name}.{item_name}", item
        else:
            yield name, child


def _registration_depths(model: nn.Module) -> dict[str, int]:
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


# ---- "timm" ------------------------------------------------------------------------------------------
# timm.models._manipulate.group_with_matcher and timm.optim._param_groups.auto_group_layers, restated so
# that a model needs only the interface (group_matcher / pretrained_cfg), not timm itself.

def _matcher_rank(matcher: Any) -> Callable[[str], tuple[float, ...]]:
    if isinstance(matcher, dict):
        compiled = []
        for ordinal, spec in enumerate(matcher.values()):
            if spec is None:
                continue
            if isinstance(spec, (tuple, list)):  # several (regex, suffix) pairs
                compiled += [(re.compile(s[0]), (ordinal,), s[1]) for s in spec]
            else:
                compiled.append((re.compile(spec), (ordinal,), None))
        matcher = compiled
    if isinstance(matcher, (list, tuple)):
        rules = matcher

        def rank(name: str) -> tuple[float, ...]:
            for regex, prefix, suffix in rules:
                m = regex.match(name)
                if m:
                    return tuple(map(float, chain.from_iterable(filter(None, (prefix, m.groups(), suffix)))))
            return (float("inf"),)  # unmatched (neck, head): the last layer
        return rank

    def rank_by_call(name: str) -> tuple[float, ...]:
        r = matcher(name)
        return tuple(r) if isinstance(r, collections.abc.Iterable) else (r,)
    return rank_by_call


def _timm_layer_ids(model: nn.Module) -> dict[str, int]:
    """timm's layer id for every named parameter (frozen ones too: timm counts them in the layer count)."""
    names = [n for n, _ in model.named_parameters()]
    group_matcher = getattr(model, "group_matcher", None)
    if callable(group_matcher):
        rank = _matcher_rank(group_matcher(coarse=False))
        grouped: dict[tuple[float, ...], list[str]] = defaultdict(list)
        for n in names:
            grouped[rank(n)].append(n)
        ids: dict[str, int] = {}
        lid = -1
        for key in sorted(k for k in grouped if k is not None):
            if lid < 0 or key[-1] != _MATCH_PREV_GROUP:
                lid += 1
            for n in grouped[key]:
                ids[n] = lid
        return ids
    # auto_group_layers: no classifier named means every parameter counts as head (one layer)
    head = (getattr(model, "pretrained_cfg", None) or {}).get("classifier", None)

    def in_head(n: str) -> bool:
        if not head:
            return True
        return any(n.startswith(h) for h in head) if isinstance(head, (tuple, list)) else n.startswith(head)

    trunk = [n for n in names if not in_head(n)]
    per_group = 12
    ids = {n: i // per_group for i, n in enumerate(trunk)}
    trunk_groups = -(len(trunk) // -per_group)
    ids.update({n: trunk_groups for n in names if in_head(n)})
    return ids


def _model_no_weight_decay(model: nn.Module) -> list[str]:
    fn = getattr(model, "no_weight_decay", None)
    return list(fn()) if callable(fn) else []


def _default_no_decay(model: nn.Module, convention: str, layer_decay: bool) -> list[NoDecay]:
    declared = _model_no_weight_decay(model)
    if convention == "timm":
        # timm matches the declared names with fnmatch against the full name only
        rules: list[NoDecay] = [lambda n, p: p.ndim <= 1]
        if not layer_decay:
            rules.append(lambda n, p: n.endswith(".bias"))
        return rules + [_full_name(pat) for pat in declared]
    return ["bias", *NORM_LAYERS, *declared]


def _full_name(pattern: str) -> Callable[[str, torch.nn.Parameter], bool]:
    return lambda n, p: fnmatch.fnmatch(n, pattern)


# ---- public ------------------------------------------------------------------------------------------

def layer_depths(model: nn.Module, convention: str = "auto") -> dict[str, int]:
    """Each trainable parameter's depth under ``convention`` (see the module docstring), by its
    ``named_parameters`` name."""
    if _resolve(model, convention) == "timm":
        ids = _timm_layer_ids(model)
        return {n: ids[n] for n, p in model.named_parameters() if p.requires_grad}
    return _registration_depths(model)


def _owners(model: nn.Module) -> dict[str, nn.Module]:
    owners: dict[str, nn.Module] = {}
    for mod_name, mod in model.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            owners.setdefault(f"{mod_name}.{p_name}" if mod_name else p_name, mod)
    return owners


def param_groups(model: nn.Module, *, lr: float, layer_decay: float | None = None, weight_decay: float = 0.0,
                 no_decay: Iterable[NoDecay] | None = None,
                 depth: Callable[[str, torch.nn.Parameter], int] | None = None,
                 scale_lr: bool = False, convention: str = "auto") -> list[dict[str, Any]]:
    """Param groups for ``model``: split by depth (with ``layer_decay``) and by weight decay.

    Conventions (module docstring): ``"timm"`` is timm's ``param_groups_layer_decay`` (after BEiT), the
    default for models with a ``group_matcher()``: the same layer ids, scales and no-weight-decay set as
    ``timm.optim.create_optimizer_v2(model, opt, weight_decay=wd, layer_decay=d)``, parameter for parameter.
    ``"registration"`` is torchsched's own registration-order rule, the default for other models.

    Args:
        model: the module; only parameters with ``requires_grad`` are included, each once.
        lr: every group's ``'lr'`` (the base LR :func:`torchsched.wrap` scales).
        layer_decay: in (0, 1]: a parameter at depth k gets multiplier ``layer_decay ** (depth_max - k)``.
            None: no depth split (two groups at most).
        weight_decay: the ``'weight_decay'`` of the decayed groups (the others get 0).
        no_decay: replaces the convention's no-weight-decay set: parameter-name shell patterns (matched against
            the attribute name and the full dotted name), module types (the parameter's owner), and
            predicates ``(name, param) -> bool``.
        depth: ``depth(name, param) -> int`` instead of the convention's layer ids.
        scale_lr: fold the multiplier into ``'lr'`` (for a plain torch optimizer) instead of
            ``'lr_multiplier'``.
        convention: ``"auto"``, ``"timm"`` or ``"registration"``.

    Returns:
        A list of group dicts ordered by depth, decayed before non-decayed, with keys ``params``, ``name``
        (``"layer{k}"`` or ``"layer{k}.no_decay"``; ``"decay"``/``"no_decay"`` without ``layer_decay``),
        ``lr``, ``weight_decay``, ``depth`` and ``lr_multiplier`` (unless ``scale_lr``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    base = check.non_negative("lr", lr)
    wd = check.non_negative("weight_decay", weight_decay)
    rule = _resolve(model, convention)
    decay_factor = None
    if layer_decay is not None:
        decay_factor = check.in_interval("layer_decay", layer_decay, 0, 1, low_open=True)
    patterns: list[str] = []
    types: list[type] = []
    predicates: list[Callable[[str, torch.nn.Parameter], bool]] = []
    entries = _default_no_decay(model, rule, decay_factor is not None) if no_decay is None else no_decay
    for item in entries:
        if isinstance(item, str):
            patterns.append(item)
        elif isinstance(item, type):
            types.append(item)
        elif callable(item):
            predicates.append(item)
        else:
            raise TypeError(f"no_decay entries must be name patterns (str) or module types, got {item!r} "
                            f"(or a predicate: a callable (name, param) -> bool)")

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    owners = _owners(model)
    if decay_factor is None:
        depths = {n: 0 for n, _ in named}
        depth_max = 0
    elif depth is not None:
        depths = {n: check.integer(f"depth({n!r}, ...)", depth(n, p)) for n, p in named}
        depth_max = max(depths.values())
    elif rule == "timm":
        ids = _timm_layer_ids(model)
        depths = {n: ids[n] for n, _ in named}
        depth_max = max(ids.values())  # timm counts frozen parameters' layers too
    else:
        depths = _registration_depths(model)
        depth_max = max(depths[n] for n, _ in named)

    def is_no_decay(name: str, p: torch.nn.Parameter) -> bool:
        attr = name.rsplit(".", 1)[-1]
        if any(fnmatch.fnmatchcase(attr, pat) or fnmatch.fnmatchcase(name, pat) for pat in patterns):
            return True
        if any(pred(name, p) for pred in predicates):
            return True
        return bool(types) and isinstance(owners.get(name), tuple(types))

    buckets: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for n, p in named:
        buckets.setdefault((depths[n], is_no_decay(n, p)), []).append(p)

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
