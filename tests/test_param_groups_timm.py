"""``torchsched.param_groups`` against timm's own layer-decay grouping, parameter for parameter.

timm is a framework extra (``make test-integrations`` installs it): without it this module skips. Models are
built without pretrained weights, small enough for the CPU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

timm = pytest.importorskip("timm")
timm_optim = pytest.importorskip("timm.optim")

import torchsched  # noqa: E402
from torchsched import schedules as S  # noqa: E402
from torchsched.param_groups import layer_depths  # noqa: E402

# (model name, create_model kwargs): a plain ViT, one with register tokens, LayerScale (1-D gammas) and
# average pooling (an fc_norm in the head), and two non-ViT families with their own group_matcher.
MODELS: list[tuple[str, dict[str, Any]]] = [
    ("vit_tiny_patch16_224", {"depth": 4, "img_size": 32, "patch_size": 8}),
    ("vit_tiny_patch16_224", {"depth": 3, "img_size": 32, "patch_size": 8, "reg_tokens": 2, "init_values": 1e-5,
                              "class_token": False, "global_pool": "avg", "fc_norm": True}),
    ("resnet10t", {}),
    ("convnext_atto", {}),
]
IDS = ["vit", "vit-reg-ls-avg", "resnet10t", "convnext_atto"]


def _model(name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10, **kwargs)


def _per_param(groups: list[dict[str, Any]], scale_key: str) -> dict[int, tuple[float, float]]:
    """id(param) -> (lr scale, weight decay), each parameter in exactly one group."""
    out: dict[int, tuple[float, float]] = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in out
            out[id(p)] = (g.get(scale_key, 1.0), g["weight_decay"])
    return out


@pytest.mark.parametrize(("name", "kwargs"), MODELS, ids=IDS)
@pytest.mark.parametrize("layer_decay", [0.75, 0.5])
def test_layer_decay_groups_equal_timm(name: str, kwargs: dict[str, Any], layer_decay: float) -> None:
    model = _model(name, kwargs)
    # timm's groups, as its optimizer factory builds them (no_weight_decay() passed in)
    opt = timm_optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=layer_decay)
    theirs = _per_param(opt.param_groups, "lr_scale")
    ours_groups = torchsched.param_groups(model, lr=1e-3, weight_decay=0.05, layer_decay=layer_decay)
    ours = _per_param(ours_groups, "lr_multiplier")
    names = {id(p): n for n, p in model.named_parameters()}
    assert set(ours) == set(theirs) == set(names)
    diff = [names[k] for k in theirs if ours[k] != theirs[k]]
    assert not diff, f"{len(diff)} of {len(theirs)} parameters differ from timm: {diff[:8]}"
    # the layer ids themselves, against timm's matcher
    ids = timm.models.group_parameters(model, model.group_matcher(coarse=False), reverse=True)  # type: ignore[operator]
    assert layer_depths(model) == ids
    by_param = {id(p): g["depth"] for g in ours_groups for p in g["params"]}
    assert {names[k]: d for k, d in by_param.items()} == ids


def test_vit_details_the_issue_names() -> None:
    model = _model(*MODELS[0])
    groups = torchsched.param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.75)
    of = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    for exempt in ("cls_token", "pos_embed"):  # from model.no_weight_decay(), not 1-D
        assert named[exempt].ndim == 3 and of[id(named[exempt])]["weight_decay"] == 0.0
    assert of[id(named["patch_embed.proj.weight"])]["weight_decay"] == 0.05
    # stem 0, blocks 1..4, the final norm with the last block, the head last
    assert [of[id(named[f"blocks.{i}.attn.qkv.weight"])]["depth"] for i in range(4)] == [1, 2, 3, 4]
    assert of[id(named["norm.weight"])]["depth"] == 4 and of[id(named["head.weight"])]["depth"] == 5
    assert of[id(named["cls_token"])]["lr_multiplier"] == 0.75 ** 5
    # the registration-order rule stays available by name
    old = torchsched.param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.75, convention="registration")
    old_of = {id(p): g for g in old for p in g["params"]}
    assert old_of[id(named["head.weight"])]["depth"] == 6 and old_of[id(named["blocks.3.norm1.weight"])]["depth"] == 4
    assert old_of[id(named["cls_token"])]["weight_decay"] == 0.0  # declared by no_weight_decay() there too


def test_weight_decay_only_groups_equal_timm() -> None:
    model = _model(*MODELS[1])
    opt = timm_optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    theirs = _per_param(opt.param_groups, "lr_scale")
    ours = _per_param(torchsched.param_groups(model, lr=1e-3, weight_decay=0.05), "lr_multiplier")
    assert ours == theirs


def test_frozen_stem_keeps_timms_layer_count() -> None:
    model = _model(*MODELS[0])
    model.patch_embed.requires_grad_(False)
    model.cls_token.requires_grad_(False)
    opt = timm_optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.6)
    ours = _per_param(torchsched.param_groups(model, lr=1e-3, weight_decay=0.05, layer_decay=0.6), "lr_multiplier")
    assert ours == _per_param(opt.param_groups, "lr_scale")


def test_wrapped_lrs_equal_timms_scheduler() -> None:
    """Under wrap() the groups follow, parameter for parameter, the LRs timm's own cosine scheduler sets on the
    groups timm builds."""
    import timm.scheduler

    model = _model(*MODELS[0])
    steps, base = 30, 1e-3
    ref = timm_optim.create_optimizer_v2(model, "sgd", lr=base, weight_decay=0.0, layer_decay=0.7)
    sched = timm.scheduler.CosineLRScheduler(ref, t_initial=steps, lr_min=0.0, t_in_epochs=False)
    wrapped = torchsched.wrap(torch.optim.SGD(torchsched.param_groups(model, lr=base, layer_decay=0.7)),
                              S.cosine(steps))

    def lrs(opt: torch.optim.Optimizer) -> dict[int, float]:
        return {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}

    for t in range(steps):
        theirs, ours = lrs(ref), lrs(wrapped)
        assert ours.keys() == theirs.keys()
        for k, lr in theirs.items():
            assert ours[k] == pytest.approx(lr, rel=1e-12, abs=1e-18), t
        wrapped.step()
        sched.step_update(t + 1)


@pytest.mark.parametrize("classifier", ["29", None])
def test_models_without_group_matcher_follow_timms_fallback(classifier: str | None) -> None:
    """convention="timm" on a model that declares no layers: timm's auto_group_layers (runs of 12 parameters,
    the pretrained_cfg classifier last; without one, a single layer)."""
    from timm.optim._param_groups import param_groups_layer_decay

    model = torch.nn.Sequential(*(torch.nn.Linear(3, 3) for _ in range(30)))
    if classifier is not None:
        model.pretrained_cfg = {"classifier": classifier}  # type: ignore[assignment]
    theirs = _per_param(param_groups_layer_decay(model, weight_decay=0.1, layer_decay=0.5), "lr_scale")
    ours = torchsched.param_groups(model, lr=1.0, weight_decay=0.1, layer_decay=0.5, convention="timm")
    assert _per_param(ours, "lr_multiplier") == theirs
    assert len({g["depth"] for g in ours}) == (6 if classifier else 1)
