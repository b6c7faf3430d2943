"""A small MLP trained with Lightning on random data, both ways torchsched offers.

1. The drop-in way: ``configure_optimizers`` returns a plain AdamW and ``torchsched.lr_scheduler.OneCycleLR``
   (``"interval": "step"``). It must use the LRs torch's own ``OneCycleLR`` gives.
2. ``torchsched.wrap``: ``configure_optimizers`` returns the wrapped optimizer and its scheduler view,
   ``{"optimizer": wrapped, "lr_scheduler": {"scheduler": wrapped.scheduler(), "interval": "step"}}``.
   Lightning steps the view after every optimizer step (the view changes nothing: the wrapper already
   advanced) and checkpoints it.

A hook on the optimizer records the LR every step used, and Lightning's ``LearningRateMonitor`` logs the LR
at the start of every step. Each way trains 24 steps in one go, then 12 steps, a checkpoint, and a second
``Trainer.fit(..., ckpt_path=...)`` for the other 12. The LRs used and the LRs the monitor logs must equal
the schedule in both.

Run: ``python examples/lightning_module.py`` (needs lightning; CPU, a few seconds). Exits 0 when every
check holds.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import Logger

import torchsched
from torchsched import schedules as S

STEPS, LR, BATCH = 24, 1e-2, 8
SPEC = S.warmup(4) >> S.cosine(STEPS - 4, final=0.05)  # the wrapped run's schedule: factors of LR


def torch_lrs() -> list[float]:
    """The LRs torch's own OneCycleLR gives at steps 0..STEPS-1."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=STEPS)
    lrs = []
    for _ in range(STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


class Metrics(Logger):
    """Keeps what is logged in memory (the LR monitor's values)."""

    def __init__(self) -> None:
        super().__init__()
        self.lrs: dict[int, float] = {}

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            if key.startswith("lr-"):
                assert step is not None
                self.lrs[step] = float(value)


class Regressor(pl.LightningModule):
    def __init__(self, way: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))
        self.way = way
        self.used: list[float] = []  # the LR each optimizer step used

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def _record(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.used.append(float(opt.param_groups[0]["lr"]))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=LR)
        opt.register_step_pre_hook(self._record)
        if self.way == "drop-in":  # the one-line change: torchsched's OneCycleLR for torch's
            sched = torchsched.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=STEPS)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        wrapped = torchsched.wrap(opt, SPEC)
        return {"optimizer": wrapped, "lr_scheduler": {"scheduler": wrapped.scheduler(), "interval": "step"}}


def data() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * BATCH, 16, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(STEPS * BATCH, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)


def fit(way: str, max_steps: int, ckpt_path: str | None = None,
        save_to: str | None = None) -> tuple[list[float], dict[int, float]]:
    """Trains to ``max_steps`` (from ``ckpt_path`` if given); returns the LRs used and the monitor's log."""
    module, metrics = Regressor(way), Metrics()
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=metrics, log_every_n_steps=1,
                         callbacks=[LearningRateMonitor(logging_interval="step")], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data(), ckpt_path=ckpt_path)
    if save_to is not None:
        trainer.save_checkpoint(save_to)
    return module.used, metrics.lrs


def assert_lrs(label: str, got: list[float], want: list[float]) -> None:
    assert len(got) == len(want), (label, len(got), len(want))
    for t, (g, w) in enumerate(zip(got, want)):
        assert math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-18), (label, t, g, w)


def main() -> None:
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*(does not have many workers|resuming from a checkpoint|mid-epoch|LeafSpec).*")
    reference = {"drop-in": torch_lrs(), "wrap": [LR * SPEC(t) for t in range(STEPS)]}
    for way, want in reference.items():
        whole, monitored = fit(way, STEPS)
        assert_lrs(way, whole, want)
        # The monitor logs at the start of each step (Lightning's step count): the LR that step uses.
        assert_lrs(f"{way}, LR monitor", [monitored[t] for t in sorted(monitored)], want)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = os.path.join(tmp, "half.ckpt")
            first, _ = fit(way, STEPS // 2, save_to=ckpt)
            rest, monitored_rest = fit(way, STEPS, ckpt_path=ckpt)
        assert first + rest == whole, f"{way}: the resumed run used other LRs"  # bit for bit
        assert sorted(monitored_rest) == list(range(STEPS // 2, STEPS)), sorted(monitored_rest)
        assert [monitored_rest[t] for t in sorted(monitored_rest)] == whole[STEPS // 2:], way
        print(f"lightning_module: {way}: {STEPS} steps, LRs used and monitored equal the schedule, resume included")


if __name__ == "__main__":
    main()
