"""Checks a built wheel: its extension must need neither libtorch nor a shared CUDA runtime.

Usage: python tools/check_wheel.py dist/torchsched-*.whl
Reads the ELF dynamic section (DT_NEEDED) of every shared object in the wheel with readelf.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

FORBIDDEN = re.compile(r"^(libtorch.*|libc10.*|libcudart\.so.*|libcuda\.so.*)$")


def needed_libraries(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


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
    print("wheel check:", "FAILED" if failures else "ok (no libtorch, no shared CUDA runtime)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
