"""Checks a built wheel: its extension must need neither libtorch nor a shared CUDA runtime, and must carry
device code for exactly the CUDA architectures its build claims.

Usage: python tools/check_wheel.py dist/torchsched-*.whl
Reads the ELF dynamic section (DT_NEEDED) of every shared object in the wheel with readelf. The claimed
architectures are what the extension reports (``_core.cuda_architectures()``, CMake's list); the device code
it carries is listed with cuobjdump (from the CUDA toolkit, or the nvidia-cuda-cuobjdump package), real
architectures as cubins and virtual ones as PTX.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

FORBIDDEN = re.compile(r"^(libtorch.*|libc10.*|libcudart\.so.*|libcuda\.so.*)$")


def needed_libraries(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def find_cuobjdump() -> str | None:
    """cuobjdump on PATH, beside the CUDA toolkit, or from the nvidia-cuda-cuobjdump wheel."""
    found = shutil.which("cuobjdump")
    if found:
        return found
    homes = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"))]
    candidates = [os.path.join(home, "bin", "cuobjdump") for home in homes if home]
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidates += sorted(glob.glob(os.path.join(root, "cu*", "bin", "cuobjdump")))
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def claimed_architectures(extension: Path) -> tuple[set[str], set[str]]:
    """(real, virtual) architectures the extension says it was built for, from CMake's list ("" without CUDA)."""
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('_core', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(';'.join(m.cuda_architectures()))")
    listed = subprocess.run([sys.executable, "-c", code, str(extension)], check=True, capture_output=True,
                            text=True).stdout.strip()
    real: set[str] = set()
    virtual: set[str] = set()
    for entry in filter(None, listed.split(";")):
        arch, _, kind = entry.partition("-")
        if kind in ("", "real"):
            real.add(arch)
        if kind in ("", "virtual"):
            virtual.add(arch)
    return real, virtual


def carried_architectures(cuobjdump: str, extension: Path) -> tuple[set[str], set[str]]:
    """(cubin, PTX) architectures found in the extension's fat binary."""
    def listed(flag: str, suffix: str) -> set[str]:
        done = subprocess.run([cuobjdump, flag, str(extension)], capture_output=True, text=True)
        return set(re.findall(rf"\.sm_(\d+)[a-z]?\.{suffix}$", done.stdout, flags=re.M))
    return listed("--list-elf", "cubin"), listed("--list-ptx", "ptx")


def check_device_code(extension: Path) -> bool:
    real, virtual = claimed_architectures(extension)
    if not real and not virtual:
        print(f"{extension.name}: built without CUDA (no device code claimed)")
        return True
    cuobjdump = find_cuobjdump()
    if cuobjdump is None:
        print(f"{extension.name}: claims CUDA architectures {sorted(real | virtual)} but no cuobjdump was found "
              "to check them (pip install nvidia-cuda-cuobjdump)")
        return False
    cubins, ptx = carried_architectures(cuobjdump, extension)
    print(f"{extension.name}: device code sm_{', sm_'.join(sorted(cubins, key=int))}; "
          f"PTX {', '.join(sorted(ptx, key=int)) or 'none'} (claimed: real {sorted(real, key=int)}, "
          f"virtual {sorted(virtual, key=int)})")
    if cubins != real or ptx != virtual:
        print(f"  MISMATCH: cubins missing {sorted(real - cubins)}, unexpected {sorted(cubins - real)}; "
              f"PTX missing {sorted(virtual - ptx)}, unexpected {sorted(ptx - virtual)}")
        return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_wheel.py WHEEL", file=sys.stderr)
        return 2
    wheel = Path(argv[0])
    failures = 0
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        objects = [n for n in zf.namelist() if n.endswith(".so") or ".so." in n]
        if not objects:
            print(f"{wheel.name}: no extension module found")
            return 1
        for name in objects:
            zf.extract(name, tmp)
            libs = needed_libraries(Path(tmp) / name)
            bad = [lib for lib in libs if FORBIDDEN.match(lib)]
            print(f"{name}: needs {', '.join(libs) or 'nothing'}")
            if bad:
                print(f"  FORBIDDEN: {', '.join(bad)}")
                failures += 1
            if "_core" in name and not check_device_code(Path(tmp) / name):
                failures += 1
    print("wheel check:", "FAILED" if failures else "ok (no libtorch, no shared CUDA runtime, the device code "
          "claimed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
