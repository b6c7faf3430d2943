"""Helpers shared by the GPU tests (tests/test_cuda.py, tests/test_lr_scheduler_cuda.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def ulp_distance32(a, b) -> np.ndarray:
    """How many float32 steps apart a and b are, element by element."""
    ia = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    ib = np.ascontiguousarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


class SyncErrors:
    """torch.cuda.set_sync_debug_mode("error") for the block, with a control proving that it is on."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        with pytest.raises(RuntimeError, match="synchroniz"):
            torch.ones((), device="cuda").item()
        return self

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        return False
