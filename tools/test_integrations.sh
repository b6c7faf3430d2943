#!/usr/bin/env bash
# make test-integrations: torchsched inside the frameworks people train with.
#  1. .venv-integrations, with the framework extras pinned in requirements-integrations.txt (made again only
#     when that file changes: a stamp in the venv holds the copy it was made from);
#  2. torchsched installed into it from the checkout as a user gets it (a non-editable build, in its own
#     build folder, build/integrations, so that a second run rebuilds only what changed);
#  3. every examples/*.py run as a test (each asserts and exits 0), then the tests that need a framework
#     (tests/test_param_groups_timm.py), both from a folder where the checkout's python/ is not importable.
# usage: tools/test_integrations.sh PYTHON
set -euo pipefail
python=$1
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-integrations"
req="$root/requirements-integrations.txt"
py="$venv/bin/python"
work=$(mktemp -d "${TMPDIR:-/tmp}/torchsched-integrations.XXXXXX")
trap 'rm -rf "$work"' EXIT

# CPU checks: no GPU, and nothing fetched from a model hub (examples build their models from configs).
export CUDA_VISIBLE_DEVICES="" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONDONTWRITEBYTECODE=1

start=$SECONDS
if ! cmp -s "$req" "$venv/.requirements"; then
  echo "test-integrations: making $venv from $(basename "$req")"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$py" -m pip install -q --upgrade pip
  "$py" -m pip install -q -r "$req"
  cp "$req" "$venv/.requirements"
fi
"$py" -c "import torch, torchvision, transformers, accelerate, lightning, timm
print('test-integrations: torch', torch.__version__, '| torchvision', torchvision.__version__, '| transformers',
      transformers.__version__, '| accelerate', accelerate.__version__, '| lightning', lightning.__version__,
      '| timm', timm.__version__)"

echo "test-integrations: installing torchsched from the checkout"
"$py" -m pip install -q --no-build-isolation --no-deps --force-reinstall -Cbuild-dir="$root/build/integrations" "$root"
echo "test-integrations: ready after $((SECONDS - start)) s"

cd "$work"  # neither the checkout nor its python/ folder is on sys.path here
"$py" -c "import torchsched, sys; sys.exit(0 if 'site-packages' in torchsched.__file__ else 'torchsched not installed')"
failed=()
for example in "$root"/examples/*.py; do
  name=$(basename "$example")
  t0=$SECONDS
  if timeout 600 "$py" "$example"; then
    echo "test-integrations: $name ok ($((SECONDS - t0)) s)"
  else
    echo "test-integrations: $name FAILED ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
done
"$py" -m pytest -q -p no:cacheprovider --import-mode=importlib --rootdir "$root" -c "$root/pyproject.toml" \
  "$root/tests/test_param_groups_timm.py" || failed+=("tests/test_param_groups_timm.py")
if ((${#failed[@]})); then
  echo "test-integrations: failed: ${failed[*]}"
  exit 1
fi
echo "test-integrations: ok ($((SECONDS - start)) s)"
