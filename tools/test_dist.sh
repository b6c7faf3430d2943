#!/usr/bin/env bash
# make test-dist: the release artifacts in dist/ installed as a user installs them, outside the source tree.
#  1. a fresh venv outside the checkout; the repaired wheel installed with plain pip, torch pinned as in the
#     Makefile; the test suite run against the installed package (pytest --import-mode=importlib, from a
#     directory where python/ is not importable; a test proves torchsched comes from site-packages);
#  2. a second fresh venv; the sdist built in an isolated build and installed; the import and smoke tests.
# usage: tools/test_dist.sh PYTHON TORCH_VERSION
set -euo pipefail
python=$1
torch_version=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/torchsched-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT
wheel=$(ls "$root"/dist/torchsched-*manylinux*.whl)
sdist=$(ls "$root"/dist/torchsched-*.tar.gz)
test_deps=(numpy pytest hypothesis pytest-benchmark matplotlib mypy)

fresh_venv() {  # $1: folder; torch only when missing, as in the Makefile
  "$python" -m venv "$1"
  "$1/bin/python" -m pip install -q --upgrade pip
  "$1/bin/python" -c "import torch" 2>/dev/null || "$1/bin/python" -m pip install -q "torch==$torch_version"
  "$1/bin/python" -m pip install -q "${test_deps[@]}"
  "$1/bin/python" -m pip install -q --no-deps torch-lr-finder  # an oracle of the range-test tests
}

echo "test-dist: the wheel $(basename "$wheel") in a fresh venv"
fresh_venv "$work/wheel-venv"
"$work/wheel-venv/bin/python" -m pip install -q "$wheel"
mkdir "$work/run" && cd "$work/run"  # neither the checkout nor its python/ folder is on sys.path here
TORCHSCHED_INSTALLED_FROM="$wheel" PYTHONPATH="$root/tests" "$work/wheel-venv/bin/python" -m pytest -q \
  -p no:cacheprovider --import-mode=importlib --rootdir "$root" -c "$root/pyproject.toml" "$root/tests"

echo "test-dist: the sdist $(basename "$sdist"), built in isolation, in a fresh venv"
fresh_venv "$work/sdist-venv"
# One CUDA architecture is enough to prove the sdist builds its CUDA code (where nvcc exists) in less time.
"$work/sdist-venv/bin/python" -m pip install -q "$sdist" \
  --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=80-real
TORCHSCHED_INSTALLED_FROM="$sdist" PYTHONPATH="$root/tests" "$work/sdist-venv/bin/python" -m pytest -q \
  -p no:cacheprovider --import-mode=importlib --rootdir "$root" -c "$root/pyproject.toml" \
  "$root/tests/test_installed.py" "$root/tests/test_core.py"
echo "test-dist: ok"
