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
test_deps=(numpy pytest hypothesis pytest-benchmark matplotlib mypy)
tag=$("$python" -c "import sys, platform; print(f'cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}')")
summary=()
status=0

seconds() { echo $(( $(date +%s) - $1 )); }

for version in "$@"; do
  echo "test-torch-range: torch $version ($tag)"
  house="$cache/wheels/torch-$version-$tag"
  t0=$(date +%s)
  if [ ! -d "$house" ]; then  # downloaded once, whole, then moved into place
    rm -rf "$house.partial" && mkdir -p "$house.partial"
    if ! "$python" -m pip download -q -d "$house.partial" "torch==$version"; then
      summary+=("torch $version: download failed"); status=1; continue
    fi
    mv "$house.partial" "$house"
  fi
  t_download=$(seconds "$t0")
  venv="$work/venv-$version"
  t0=$(date +%s)
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  if ! "$venv/bin/python" -m pip install -q --no-index --find-links "$house" "torch==$version" \
      || ! "$venv/bin/python" -m pip install -q "$wheel" "${test_deps[@]}" \
      || ! "$venv/bin/python" -m pip install -q --no-deps torch-lr-finder; then
    summary+=("torch $version: install failed"); status=1; rm -rf "$venv"; continue
  fi
  installed=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
  t_install=$(seconds "$t0")
  mkdir -p "$work/run-$version" && cd "$work/run-$version"  # neither the checkout nor python/ is on sys.path
  t0=$(date +%s)
  TORCHSCHED_INSTALLED_FROM="$wheel" PYTHONPATH="$root/tests" "$venv/bin/python" -m pytest -q \
    -p no:cacheprovider --import-mode=importlib --rootdir "$root" -c "$root/pyproject.toml" \
    --junitxml="$work/junit-$version.xml" "$root/tests" "$root/bench"
  rc=$?
  t_test=$(seconds "$t0")
  cd "$root"
  counts=$("$venv/bin/python" - "$work/junit-$version.xml" <<'EOF'
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
  summary+=("torch $version (installed $installed): $counts, pytest exit $rc (download ${t_download}s, install ${t_install}s, tests ${t_test}s)")
  rm -rf "$venv"  # several GB each
done

echo "test-torch-range: the wheel $(basename "$wheel") with Python $("$python" -c 'import platform; print(platform.python_version())')"
printf '%s\n' "${summary[@]}"
exit "$status"
