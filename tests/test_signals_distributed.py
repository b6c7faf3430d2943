"""The signal-driven rules under torch.distributed: two processes on the gloo backend (CPU), started by
this module as subprocesses that meet through a FileStore in ``tmp_path`` (no ports, so nothing to race
for). Each rank runs every scenario once and writes its LR sequences to a JSON file; the tests compare them
with each other and with a single process (no torch.distributed) computed here.

- plateau: ``observe()`` all-reduces the metric (mean, sum, max, min) over the default group, an explicit
  group, or the wrapper's group; ``reduce=None`` lets the ranks decide alone.
- average gradient under DDP: G of the averaged gradients, the same on every rank.
- average gradient under FSDP2 (``fully_shard``): G spans the shards, including a rank whose shard of a
  parameter is empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import torch

import torchsched
from torchsched import schedules as S

if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
    pytest.skip("this torch has no torch.distributed with the gloo backend", allow_module_level=True)

WORLD = 2
F64 = torch.float64
TIMEOUT_S = 120.0  # the whole two-rank run; a hang fails the tests instead of blocking CI
COLLECTIVE_TIMEOUT = timedelta(seconds=30)

# Rank-dependent metrics, chosen so that each reduction (and each rank alone) leads to other decisions
# (test_plateau_reductions_lead_to_different_decisions checks it).
METRICS = (
    [1.89, 0.72, 1.89, 1.83, 1.03, 1.93, 1.98, 1.77, 1.34, 1.81, 0.73, 0.7, 0.71, 1.54],
    [1.94, 0.79, 0.71, 1.83, 1.82, 0.69, 0.55, 0.92, 0.91, 0.51, 0.72, 1.75, 0.6, 1.18],
)
# An absolute threshold: a relative one is blind to scale, so "sum" would decide exactly as "mean".
PLATEAU: dict[str, Any] = dict(patience=1, factor=0.5, threshold=0.05, threshold_mode="abs")
PLATEAU_LRS = [0.1, 0.05]
GRAD_STEPS = 6
GRAD_LRS = [0.05, 0.02]


def _combine(reduce: str | None, a: float, b: float) -> float:
    """What every rank should observe, in float64 as the all-reduce computes it (SUM, then / world size)."""
    return {"mean": (a + b) / 2, "sum": a + b, "max": max(a, b), "min": min(a, b)}[reduce]  # type: ignore[index]


# ---- what both sides run -------------------------------------------------------------------------------

def _plateau_run(metrics: list[float], *, reduce: str | None = "mean", process_group: Any = None,
                 wrap_group: Any = None) -> list[list[float]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    groups = [{"params": list(layer.parameters()), "lr": lr} for layer, lr in zip(model, PLATEAU_LRS)]
    wrapped = torchsched.wrap(torch.optim.SGD(groups), S.plateau(**PLATEAU), process_group=wrap_group)
    lrs = []
    for m in metrics:
        wrapped.step()
        wrapped.observe(torch.tensor(m, dtype=F64), reduce=reduce, process_group=process_group)
        lrs.append(wrapped.get_last_lr())
    return lrs


def _grad_model() -> torch.nn.Sequential:
    # 7 rows shard 4 + 3 across two ranks, and the 1-row output layer leaves rank 1 an empty shard
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1))


def _batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 * rank + step)
    x = torch.randn(8, 4, generator=gen)
    return x, torch.randn(8, 1, generator=gen)


def _loss(model: torch.nn.Module, rank: int, step: int) -> torch.Tensor:
    x, y = _batch(rank, step)
    return (model(x) - y).pow(2).mean()


def _grad_groups(model: torch.nn.Sequential) -> list[dict[str, Any]]:
    return [{"params": list(model[0].parameters()), "lr": GRAD_LRS[0]},
            {"params": list(model[2].parameters()), "lr": GRAD_LRS[1]}]


def _grad_run(model: torch.nn.Sequential, norm: str, loss_of_step: Any) -> dict[str, Any]:
    """Every step's LRs, and every step's G (the rule's ``last``: no smoothing, so G itself). The LR is
    G / G_0, blind to a constant scale of G; G itself is not."""
    wrapped = torchsched.wrap(torch.optim.SGD(_grad_groups(model)), S.average_gradient(norm=norm))
    lrs, gs = [], []
    for step in range(GRAD_STEPS):
        wrapped.zero_grad()
        loss_of_step(step).backward()
        wrapped.step()
        lrs.append(wrapped.get_last_lr())
        gs.append(wrapped.state_dict()["torchsched"]["signals"]["rules"][0]["last"].tolist())
    return {"lrs": lrs, "g": gs}


def _single_process_grad_run(norm: str) -> dict[str, Any]:
    """One unsharded model on both ranks' data; the loss is the mean of the two ranks' losses, so its
    gradient is the one DDP and FSDP2 average across the ranks."""
    model = _grad_model()
    return _grad_run(model, norm, lambda step: (_loss(model, 0, step) + _loss(model, 1, step)) / 2)


# ---- the rank side -------------------------------------------------------------------------------------

def _rank_main(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    try:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                                timeout=COLLECTIVE_TIMEOUT)
        pair = dist.new_group([0, 1])
        singles = [dist.new_group([0]), dist.new_group([1])]  # every rank creates every group, in order
        mine = METRICS[rank]

        for reduce in ("mean", "sum", "max", "min"):
            results[f"plateau_{reduce}"] = _plateau_run(mine, reduce=reduce)
        results["plateau_none"] = _plateau_run(mine, reduce=None)
        results["plateau_pair_group"] = _plateau_run(mine, process_group=pair)
        results["plateau_single_group"] = _plateau_run(mine, process_group=singles[rank])
        results["plateau_wrapper_group"] = _plateau_run(mine, wrap_group=singles[rank])
        results["plateau_explicit_over_wrapper"] = _plateau_run(mine, process_group=pair, wrap_group=singles[rank])

        from torch.nn.parallel import DistributedDataParallel as DDP

        for norm in ("l2", "mean_abs"):
            model = _grad_model()
            ddp = DDP(model)
            results[f"ddp_{norm}"] = _grad_run(model, norm, lambda step: _loss(ddp, rank, step))

        try:
            from torch.distributed.fsdp import fully_shard
            from torch.distributed.tensor import DTensor
        except ImportError as exc:
            results["fsdp_import_error"] = f"{type(exc).__name__}: {exc}"
        else:
            for norm in ("l2", "mean_abs"):
                model = _grad_model()
                fully_shard(model[0])
                fully_shard(model[2])
                fully_shard(model)
                results[f"fsdp_shard_sizes_{norm}"] = [cast(DTensor, p).to_local().numel()
                                                          for p in model.parameters()]
                results[f"fsdp_{norm}"] = _grad_run(model, norm, lambda step: _loss(model, rank, step))
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        results["error"] = traceback.format_exc()
    Path(out).write_text(json.dumps(results))  # json keeps floats bit for bit (repr round-trips)


# ---- the test side -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Both ranks' results (one run of the two processes for the whole module)."""
    tmp = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = []
    for rank in range(WORLD):
        cmd = [sys.executable, str(Path(__file__).resolve()), str(rank), str(tmp / "store"),
               str(tmp / f"rank{rank}.json")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + TIMEOUT_S
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.communicate()
        pytest.fail(f"the two-rank run did not finish within {TIMEOUT_S:.0f} s")
    out, failures = [], []
    for rank, (proc, log) in enumerate(zip(procs, logs)):
        path = tmp / f"rank{rank}.json"
        if path.exists():
            result = json.loads(path.read_text())
        else:
            result = {"error": f"exited with {proc.returncode} before writing its results:\n{log}"}
        if "error" in result:
            failures.append(f"rank {rank}:\n{result['error']}")  # both ranks: the cause may lie on either
        out.append(result)
    if failures:
        pytest.fail("the two-rank run failed\n" + "\n".join(failures))
    return out


def _reference_plateau(reduce: str | None) -> list[list[float]]:
    return _plateau_run([_combine(reduce, a, b) for a, b in zip(*METRICS)], reduce=None)


@pytest.mark.parametrize("reduce", ["mean", "sum", "max", "min"])
def test_plateau_ranks_agree_on_the_reduced_metric(ranks: list[dict[str, Any]], reduce: str) -> None:
    got = [r[f"plateau_{reduce}"] for r in ranks]
    assert got[0] == got[1]
    assert got[0] == _reference_plateau(reduce)  # exact: the same float64 metric, the same decisions


def test_plateau_reductions_lead_to_different_decisions() -> None:
    """The chosen metrics tell the reductions (and each rank alone) apart, so the tests above prove the
    reduction happened."""
    runs = [_reference_plateau(reduce) for reduce in ("mean", "sum", "max", "min")]
    runs += [_plateau_run(m, reduce=None) for m in METRICS]
    distinct = {json.dumps(run) for run in runs}
    assert len(distinct) == len(runs)


def test_plateau_without_reduce_lets_the_ranks_diverge(ranks: list[dict[str, Any]]) -> None:
    got = [r["plateau_none"] for r in ranks]
    assert got[0] != got[1]
    for rank in range(WORLD):
        assert got[rank] == _plateau_run(METRICS[rank], reduce=None)


def test_plateau_explicit_process_group(ranks: list[dict[str, Any]]) -> None:
    mean = _reference_plateau("mean")
    for r in ranks:
        assert r["plateau_pair_group"] == mean
        # the explicit group wins over the wrapper's
        assert r["plateau_explicit_over_wrapper"] == mean
    # a group of one rank: the mean over it is the rank's own metric
    for rank in range(WORLD):
        own = _plateau_run(METRICS[rank], reduce=None)
        assert ranks[rank]["plateau_single_group"] == own
        assert ranks[rank]["plateau_wrapper_group"] == own


def _assert_matches_single_process(got: list[dict[str, Any]], norm: str) -> None:
    assert got[0] == got[1]  # bit-identical across ranks: G is all-reduced before it is used
    want = _single_process_grad_run(norm)
    for key in ("lrs", "g"):
        assert len(got[0][key]) == len(want[key]) == GRAD_STEPS
        for step, (g, w) in enumerate(zip(got[0][key], want[key])):
            # float32 gradients summed in another order: they agree to float32 precision
            assert g == pytest.approx(w, rel=1e-5), f"{key}, step {step}"
    lrs = want["lrs"]
    assert len({lr[0] for lr in lrs}) > 2 and len({lr[1] for lr in lrs}) > 2  # G actually moves


@pytest.mark.parametrize("norm", ["l2", "mean_abs"])
def test_average_gradient_under_ddp_is_g_of_the_mean_gradient(ranks: list[dict[str, Any]], norm: str) -> None:
    _assert_matches_single_process([r[f"ddp_{norm}"] for r in ranks], norm)


@pytest.mark.parametrize("norm", ["l2", "mean_abs"])
def test_average_gradient_under_fsdp2_spans_the_shards(ranks: list[dict[str, Any]], norm: str) -> None:
    if "fsdp_import_error" in ranks[0]:
        pytest.skip(f"torch.distributed.fsdp.fully_shard is not available: {ranks[0]['fsdp_import_error']}")
    sizes = [r[f"fsdp_shard_sizes_{norm}"] for r in ranks]
    # the layout the model was chosen for: uneven shards, and an empty one on rank 1
    assert sizes == [[16, 4, 7, 1], [12, 3, 0, 0]]
    _assert_matches_single_process([r[f"fsdp_{norm}"] for r in ranks], norm)


if __name__ == "__main__":  # one rank, started by the fixture above
    _rank_main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
