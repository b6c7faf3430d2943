"""tools/gpu_check.py (make gpu-check) on a machine without a GPU: it must say so and exit with its own status,
so that a CI run without a GPU still exercises the script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: make gpu-check runs for real")
def test_without_a_gpu_it_says_so_and_exits_with_2():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--skip-build"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == gpu_check.NO_GPU_STATUS == 2, done.stdout + done.stderr
    assert "no CUDA GPU here" in done.stdout


def test_the_build_targets_only_the_gpu_found():
    cmd, env = gpu_check.build_command("90")
    assert "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90-real" in cmd
    assert "-Ccmake.define.TORCHSCHED_CUDA=ON" in cmd
    assert int(env["CMAKE_BUILD_PARALLEL_LEVEL"]) >= 1
    plain, _ = gpu_check.build_command("")
    assert not any("CUDA" in part for part in plain)  # no GPU: the ordinary build, nothing forced


def test_the_report_names_every_part_and_fails_loudly(tmp_path):
    report = gpu_check.Report(budget=60)
    report.facts.append(("device", "a device (sm_90)"))
    ok, _ = report.run("a part that passes", [sys.executable, "-c", "print('fine')"], 30)
    bad, _ = report.run("a part that fails", [sys.executable, "-c", "import sys; sys.exit(3)"], 30)
    slow, output = report.run("a part that runs past its limit", [sys.executable, "-c", "import time; time.sleep(5)"], 1)
    assert ok and not bad and not slow and "stopped after" in output
    text = report.markdown("a device")
    assert "| a part that passes | PASS |" in text and "| a part that fails | **FAIL** |" in text
    assert "(exit status 3)" in text and "- device: a device (sm_90)" in text
