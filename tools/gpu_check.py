"""The whole CUDA-path check on a GPU machine, as one command that fits a short GPU lease.

    python tools/gpu_check.py [--out REPORT.md] [--skip-build] [--budget SECONDS]   (make gpu-check)

In order, each with its own time limit inside the budget:

1. builds the extension for the GPU it finds (its compute capability only, e.g. sm_90 on an H100/H200), with
   the build parallel over every core, into build/gpu-check;
2. checks that the built extension carries device code for that architecture (cuobjdump);
3. runs the CUDA tests (``pytest -m cuda tests``): every family against the CPU engine, the sync-free step
   loops under ``torch.cuda.set_sync_debug_mode("error")``, whole-step graph capture equal to eager steps
   bit for bit for every family (fused and non-fused optimizers), the GradScaler skip with a real
   ``found_inf``, one launch for any number of groups;
4. runs ``bench/gpu_bench.py --quick``: launches and host syncs per step at G = 1, 100 and 1000 from the
   profiler, and torch against torchsched in the same run.

It writes one markdown report, bench/results/gpu-check-<device>.md (and a copy under $OUT when that is set),
naming the device, the driver, the CUDA toolkit and torch versions, and each part's result and output.

Without a GPU it still builds (the ordinary build), then says so and exits with status 2, so that the script
is exercised on every CI run. Exit status: 0 when every part passed, 1 when one failed, 2 without a GPU.
It uses the interpreter that runs it; on a GPU machine that is the Python holding a CUDA build of torch.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_GPU_STATUS = 2


class Report:
    """The parts run so far, each with its status, time and the tail of its output."""

    def __init__(self, budget: float) -> None:
        self.start = time.monotonic()
        self.budget = budget
        self.facts: list[tuple[str, str]] = []
        self.parts: list[tuple[str, bool, float, str]] = []

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def run(self, title: str, cmd: list[str], limit: float, env: dict[str, str] | None = None) -> tuple[bool, str]:
        """Runs ``cmd`` in the repository with at most ``limit`` seconds (and never past the budget)."""
        limit = max(1.0, min(limit, self.left()))
        print(f"gpu-check: {title} (limit {limit:.0f} s): {' '.join(cmd)}", flush=True)
        began = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                                  text=True, timeout=limit)
            ok, output = done.returncode == 0, done.stdout + done.stderr
            if not ok:
                output += f"\n(exit status {done.returncode})"
        except subprocess.TimeoutExpired as exc:
            text = (exc.stdout or b"") + (exc.stderr or b"")
            ok = False
            output = (text.decode(errors="replace") if isinstance(text, bytes) else text) + \
                f"\n(stopped after {limit:.0f} s)"
        seconds = time.monotonic() - began
        print(f"gpu-check: {title}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
        self.parts.append((title, ok, seconds, output))
        return ok, output

    def markdown(self, device: str) -> str:
        lines = [f"# gpu-check on {device}", "",
                 f"Written by `make gpu-check` (tools/gpu_check.py) on "
                 f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
                 f"{time.monotonic() - self.start:.0f} s in all.", ""]
        lines += [f"- {name}: {value}" for name, value in self.facts]
        lines += ["", "| part | result | seconds |", "|---|---|---|"]
        lines += [f"| {title} | {'PASS' if ok else '**FAIL**'} | {seconds:.0f} |" for title, ok, seconds, _ in self.parts]
        for title, ok, _, output in self.parts:
            tail = "\n".join(output.strip().splitlines()[-60:])
            lines += ["", f"## {title}: {'PASS' if ok else 'FAIL'}", "", "```", tail, "```"]
        return "\n".join(lines) + "\n"


def query(cmd: list[str]) -> str:
    """The first line ``cmd`` prints, or '' when it is missing or fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = done.stdout.strip().splitlines() if done.returncode == 0 else []
    return lines[0].strip() if lines else ""


def gpu_architecture() -> str:
    """The first GPU's compute capability as CMake writes it (9.0 -> '90'), or '' without a GPU."""
    cap = query(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"])
    return cap.replace(".", "") if re.fullmatch(r"\d+\.\d+", cap) else ""


def build_command(arch: str) -> tuple[list[str], dict[str, str]]:
    """The editable build of the extension: for ``arch`` only when given, else the ordinary build."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "-e", "."]
    env = {"CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
    if arch:
        cmd += ["-Cbuild-dir=build/gpu-check", "-Ccmake.define.TORCHSCHED_CUDA=ON",
                f"-Ccmake.define.CMAKE_CUDA_ARCHITECTURES={arch}-real"]
    return cmd, env


def torch_facts() -> dict[str, str]:
    """torch's version, its CUDA version and whether it sees a GPU, asked of a fresh interpreter."""
    code = ("import torch; print(torch.__version__); print(torch.version.cuda); "
            "print(torch.cuda.is_available() and torch.cuda.get_device_name() or '')")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return {}
    lines = done.stdout.splitlines() if done.returncode == 0 else []
    return dict(zip(("version", "cuda", "device"), lines)) if len(lines) == 3 else {}


def write(report: Report, device: str, out: str | None) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "no-gpu"
    path = Path(out) if out else ROOT / "bench" / "results" / f"gpu-check-{slug}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = report.markdown(device)
    path.write_text(text, encoding="utf-8")
    if os.environ.get("OUT"):  # the GPU lease brings back what is written there
        shutil.copy(path, Path(os.environ["OUT"]) / path.name)
    print(f"gpu-check: report written to {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="the report's path (default bench/results/gpu-check-<device>.md)")
    parser.add_argument("--skip-build", action="store_true", help="use the extension as it is built now")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for everything (default 450)")
    args = parser.parse_args(argv)

    report = Report(args.budget)
    arch = gpu_architecture()
    if not args.skip_build:
        cmd, env = build_command(arch)
        built, _ = report.run(f"build for sm_{arch}" if arch else "build", cmd, 300, env)
        if not built:
            print(report.parts[-1][3], file=sys.stderr)
            return 1

    facts = torch_facts()
    if not arch or not facts.get("device"):
        why = "nvidia-smi finds no GPU" if not arch else f"torch {facts.get('version', '?')} sees no CUDA device"
        print(f"gpu-check: no CUDA GPU here ({why}); the build was checked, nothing was run on a device.")
        return NO_GPU_STATUS

    device = facts["device"]
    report.facts += [
        ("device", f"{device} (sm_{arch})"),
        ("driver", query(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]) or "unknown"),
        ("CUDA toolkit (nvcc)", (query(["sh", "-c", "nvcc --version | tail -n 2 | head -n 1"]) or "unknown")),
        ("torch", f"{facts['version']} (CUDA {facts['cuda']})"),
        ("Python", platform.python_version()),
        ("CPU cores for the build", str(os.cpu_count())),
    ]
    core = ("import torchsched._core as c; print(c.__file__); "
            "assert c.built_with_cuda() and c.cuda_available(), 'the core cannot use the GPU'")
    ok, output = report.run("the core sees the GPU", [sys.executable, "-c", core], 60)
    if ok and shutil.which("cuobjdump"):
        report.run(f"device code for sm_{arch} in the extension",
                   ["sh", "-c", f"cuobjdump --list-elf '{output.splitlines()[0]}' | tee /dev/stderr "
                                f"| grep -q 'sm_{arch}'"], 60)
    report.run("CUDA tests (pytest -m cuda)",
               [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "-rfE", "tests"], 300)
    report.run("benchmark (bench/gpu_bench.py --quick)",
               [sys.executable, "bench/gpu_bench.py", "--quick", "--out", str(ROOT / "build" / "gpu_bench.md")], 240)
    write(report, device, args.out)
    return 0 if all(ok for _, ok, _, _ in report.parts) else 1


if __name__ == "__main__":
    sys.exit(main())
