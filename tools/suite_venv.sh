# Sourced by test_torch_range.sh and test_python_range.sh: what both do for one (Python, torch) pair. Needs
# $root (the checkout), $work (a scratch folder) and $cache (the wheelhouse folder).
test_deps=(numpy pytest hypothesis pytest-benchmark matplotlib mypy)

seconds() { echo $(( $(date +%s) - $1 )); }

# torch_house PYTHON VERSION TAG: the folder holding that torch's wheels for PYTHON, downloaded once, whole,
# then moved into place (older releases come from the registry as CUDA builds of about 3 GB).
torch_house() {
  local house="$cache/wheels/torch-$2-$3"
  if [ ! -d "$house" ]; then
    rm -rf "$house.partial" && mkdir -p "$house.partial"
    "$1" -m pip download -q -d "$house.partial" "torch==$2" >&2 || return 1
    mv "$house.partial" "$house"
  fi
  echo "$house"
}

# suite_venv PYTHON VENV HOUSE VERSION WHEEL: a fresh venv with that torch (from HOUSE only), the wheel installed
# with plain pip, and the test dependencies.
suite_venv() {
  "$1" -m venv "$2" && "$2/bin/python" -m pip install -q --upgrade pip \
    && "$2/bin/python" -m pip install -q --no-index --find-links "$3" "torch==$4" \
    && "$2/bin/python" -m pip install -q "$5" "${test_deps[@]}" \
    && "$2/bin/python" -m pip install -q --no-deps torch-lr-finder
}

# run_suite VENV WHEEL NAME: the whole suite (tests/ and bench/, root conftest.py included) against the installed
# package, from a folder outside the checkout (neither it nor python/ is on sys.path); sets $rc and $counts
# ("P passed, F failed, S skipped").
run_suite() {
  local junit="$work/junit-$3.xml"
  mkdir -p "$work/run-$3" && cd "$work/run-$3" || return 1
  TORCHSCHED_INSTALLED_FROM="$2" PYTHONPATH="$root/tests" "$1/bin/python" -m pytest -q \
    -p no:cacheprovider --import-mode=importlib --rootdir "$root" -c "$root/pyproject.toml" \
    --junitxml="$junit" "$root/tests" "$root/bench"
  rc=$?
  cd "$root" || return 1
  counts=$("$1/bin/python" - "$junit" <<'PY'
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
PY
)
}
