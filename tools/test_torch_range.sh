#!/usr/bin/env bash
# make test-torch-range: the wheel in dist/ against each torch release of the supported range.
# For each version: a fresh venv outside the checkout, that torch (from a wheelhouse cached outside the checkout:
# older releases come from the registry as CUDA builds of about 3 GB), the wheel installed with plain pip, and the
# whole suite (tests/ and bench/, root conftest.py included) run against the installed package, as test_dist.sh
# runs it. Prints one line per version (passed, failed, skipped) and fails if any version has a failure.
# usage: tools/test_torch_range.sh PYTHON TORCH_VERSION...
# The wheelhouse: $TORCHSCHED_TORCH_CACHE, by default ~/.cache/torchsched-torch-range (one folder per torch
# version, Python and machine; delete a folder to download it again).
set -uo pipefail
python=$1
shift
[ $# -gt 0 ] || { echo "usage: $0 PYTHON TORCH_VERSION..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TORCHSCHED_TORCH_CACHE:-$HOME/.cache/torchsched-torch-range}
wheel=$(ls "$root"/dist/torchsched-*manylinux*.whl) || { echo "no wheel in dist/: run make dist" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/torchsched-range.XXXXXX")
trap 'rm -rf "$work"' EXIT
tag=$("$python" -c "import sys, platform; print(f'cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}')")
summary=()
status=0
# shellcheck source=tools/suite_venv.sh
source "$root/tools/suite_venv.sh"

for version in "$@"; do
  echo "test-torch-range: torch $version ($tag)"
  t0=$(date +%s)
  if ! house=$(torch_house "$python" "$version" "$tag"); then
    summary+=("torch $version: download failed"); status=1; continue
  fi
  t_download=$(seconds "$t0")
  venv="$work/venv-$version"
  t0=$(date +%s)
  if ! suite_venv "$python" "$venv" "$house" "$version" "$wheel"; then
    summary+=("torch $version: install failed"); status=1; rm -rf "$venv"; continue
  fi
  installed=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
  t_install=$(seconds "$t0")
  t0=$(date +%s)
  run_suite "$venv" "$wheel" "$version"
  t_test=$(seconds "$t0")
  [ "$rc" -eq 0 ] || status=1
  summary+=("torch $version (installed $installed): $counts, pytest exit $rc (download ${t_download}s, install ${t_install}s, tests ${t_test}s)")
  rm -rf "$venv"  # several GB each
done

echo "test-torch-range: the wheel $(basename "$wheel") with Python $("$python" -c 'import platform; print(platform.python_version())')"
printf '%s\n' "${summary[@]}"
exit "$status"
