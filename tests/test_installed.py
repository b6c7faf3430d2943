"""What a user gets from ``pip install``: where the package comes from, one version everywhere, the wheel's
contents, and a smoke run. ``make test-dist`` runs this file against a wheel and an sdist installed outside the
source tree (it sets TORCHSCHED_INSTALLED_FROM); ``make test`` runs it against the development install."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import torchsched
from torchsched import _core
from torchsched import schedules as S

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_FROM = os.environ.get("TORCHSCHED_INSTALLED_FROM", "")

# Everything a wheel may hold besides the .dist-info folder: the package's modules (any *.py under
# torchsched/), its stubs and marker, and the one extension module.
ALLOWED_IN_WHEEL = ("torchsched/py.typed", "torchsched/_core.pyi")


def test_the_package_comes_from_where_it_was_installed():
    location = Path(torchsched.__file__).resolve()
    if INSTALLED_FROM:
        assert ROOT not in location.parents, f"torchsched was imported from the source tree: {location}"
        assert "site-packages" in location.parts
        assert Path(_core.__file__).resolve().parent == location.parent
    else:
        assert location.parent == ROOT / "python" / "torchsched"  # the editable development install


def test_one_version_everywhere():
    version = torchsched.__version__
    assert importlib.metadata.version("torchsched") == version
    assert _core.__version__ == version
    done = subprocess.run([sys.executable, "-m", "torchsched", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["torchsched", version]


def test_the_core_refuses_a_package_of_another_version(tmp_path):
    # A partial upgrade: the package's Python files say one version, its compiled core another.
    package = Path(torchsched.__file__).resolve().parent
    copy = tmp_path / "torchsched"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(_core.__file__, copy)  # an editable install keeps the core apart from the sources
    init = copy / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{torchsched.__version__}"', '__version__ = "9.9.9"'))
    # A development install's finder would serve torchsched from the source tree: set it aside.
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "
            "'ScikitBuildRedirectingFinder']; import torchsched")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "9.9.9" in last and _core.__version__ in last


def allowed(name: str) -> bool:
    if name.endswith("/"):  # a folder entry
        return name.startswith(("torchsched/", f"torchsched-{torchsched.__version__}.dist-info/"))
    if name.startswith(f"torchsched-{torchsched.__version__}.dist-info/"):
        return True
    if name.startswith("torchsched.libs/"):  # libraries auditwheel grafts in (none today)
        return True
    if name in ALLOWED_IN_WHEEL:
        return True
    if name.startswith("torchsched/") and name.endswith(".py") and "/tests/" not in name:
        return True
    return name.startswith("torchsched/_core.") and name.endswith(".so")


@pytest.mark.skipif(not INSTALLED_FROM.endswith(".whl"), reason="needs the built wheel (make test-dist)")
def test_the_wheel_holds_only_the_package():
    names = zipfile.ZipFile(INSTALLED_FROM).namelist()
    assert [n for n in names if not allowed(n)] == []
    for required in (*ALLOWED_IN_WHEEL, "torchsched/__init__.py"):
        assert required in names
    assert sum(n.startswith("torchsched/_core.") and n.endswith(".so") for n in names) == 1


def test_the_allow_list_refuses_what_does_not_belong():
    for name in ("tests/test_core.py", "bench/gpu_bench.py", "torchsched/CMakeCache.txt", "build/x.o",
                 "torchsched/tests/test_x.py", "conftest.py"):
        assert not allowed(name), name
    assert allowed("torchsched/lr_scheduler/__init__.py") and allowed("torchsched/py.typed")


def test_smoke_schedule_wrap_and_drop_in():
    sched = S.warmup(10) >> S.cosine(90, final=0.1)
    assert sched(0) == 0.0 and sched(100) == pytest.approx(0.1)
    param = torch.nn.Parameter(torch.ones(3))
    opt = torchsched.wrap(torch.optim.SGD([param], lr=0.5), sched)
    for _ in range(10):
        param.sum().backward()
        opt.step()
        opt.zero_grad()
    assert opt.get_last_lr() == [pytest.approx(0.5 * sched(10))]
    ours = torchsched.lr_scheduler.StepLR(torch.optim.SGD([param], lr=1.0), step_size=2, gamma=0.5)
    theirs = torch.optim.lr_scheduler.StepLR(torch.optim.SGD([param], lr=1.0), step_size=2, gamma=0.5)
    for _ in range(5):
        ours.optimizer.step()
        theirs.optimizer.step()
        ours.step()
        theirs.step()
    assert ours.get_last_lr() == theirs.get_last_lr() == [0.25]


def test_the_extension_carries_the_device_code_it_claims():
    sys.path.insert(0, str(ROOT / "tools"))
    import check_wheel

    extension = Path(_core.__file__)
    real, virtual = check_wheel.claimed_architectures(extension)
    assert bool(real or virtual) == _core.built_with_cuda()
    cuobjdump = check_wheel.find_cuobjdump()
    if not _core.built_with_cuda() or cuobjdump is None:
        pytest.skip("a CUDA build and cuobjdump are needed to list device code")
    assert check_wheel.carried_architectures(cuobjdump, extension) == (real, virtual)
    assert check_wheel.check_device_code(extension)
