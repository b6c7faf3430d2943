"""Shared settings for tests/ and bench/: GPU tests skip without a CUDA device; hypothesis runs without deadlines."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True, derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _cuda_ready() -> bool:
    try:
        import torch

        from torchsched import _core
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    # torch sees a GPU: the core must too, or the GPU tests would skip silently on a broken build.
    if not (_core.built_with_cuda() and _core.cuda_available()):
        raise pytest.UsageError(
            "torch sees a CUDA device but torchsched's core cannot use it "
            f"(built_with_cuda={_core.built_with_cuda()}, cuda_available={_core.cuda_available()}): "
            "rebuild with nvcc on PATH (TORCHSCHED_CUDA=ON) and a driver that supports its CUDA runtime"
        )
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_ready():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and a CUDA build of torchsched")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
