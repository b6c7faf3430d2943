"""Counts the operations that would make the host wait for a GPU, over code run on the CPU.

On a GPU these synchronize: reading a tensor on the host (``aten._local_scalar_dense``, behind ``.item()``,
``float(t)``, ``int(t)`` and ``bool(t)``), ``aten.nonzero`` (its output size depends on the data),
``aten.is_nonzero`` and ``aten.equal`` (a Python bool out of device data), and copies between devices. A
``TorchDispatchMode`` sees every aten op the code runs, whatever device it runs on, so zero counted on the
CPU means zero for the same code on a GPU.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

#: The ops that read device data on the host.
HOST_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.is_nonzero.default,
              aten.equal.default}


def _devices(args: Any, kwargs: Any) -> set[torch.device]:
    seen: set[torch.device] = set()
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor):
            seen.add(value.device)
    return seen


class SyncCounter(TorchDispatchMode):
    """``with SyncCounter() as c: ...`` then ``c.count`` (all) and ``c.ops`` (a Counter by op name)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.ops.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in HOST_READS:
            self.ops[str(func.overloadpacket.__name__)] += 1
        elif func.overloadpacket in (aten._to_copy, aten.copy_, aten.to):
            target = kwargs.get("device")
            devices = _devices(args, kwargs) | ({torch.device(target)} if target is not None else set())
            if len({d.type for d in devices}) > 1 or len(devices) > 1:
                self.ops[f"{func.overloadpacket.__name__} across devices"] += 1
        return func(*args, **kwargs)
