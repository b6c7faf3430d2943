"""The command line (run as ``python -m torchsched`` in a subprocess) and the spec parser behind ``plot``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from torchsched import schedules as S
from torchsched import spec
from torchsched.cli import GALLERY, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMANDS = ["plot", "find-lr", "bench", "demo", "gallery"]


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "torchsched", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def assert_png(path: Path) -> np.ndarray:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 300
    # Not a blank canvas: a plot has lines in several colours.
    assert len(np.unique(img.reshape(-1, img.shape[2])[:, :3], axis=0)) > 20
    return img


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ---- commands in a subprocess ----------------------------------------------------------------------

def test_plot_writes_png_and_prints_key_points(tmp_path: Path) -> None:
    out = tmp_path / "lr.png"
    p = run("plot", "warmup(linear, 1000) >> cosine(100000, final=0.1)", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert_png(out)
    rows = {}
    table = p.stdout.split("note\n", 1)[1]
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            rows[int(parts[0])] = (float(parts[1]), " ".join(parts[2:]))
    assert rows[0] == (0.0, "start, min")
    assert rows[1000][0] == pytest.approx(1.0) and "max" in rows[1000][1] and "boundary" in rows[1000][1]
    assert rows[101000][0] == pytest.approx(0.1)
    sched = S.warmup(1000) >> S.cosine(100000, final=0.1)
    for step, (value, _) in rows.items():
        assert value == pytest.approx(sched(step), rel=1e-5)
    assert f"wrote {out}" in p.stdout


def test_plot_from_json_file_with_base_lr_and_log(tmp_path: Path) -> None:
    f = tmp_path / "sched.json"
    f.write_text(json.dumps({"schedule": {"type": "chain", "schedules": [
        "warmup(linear, 10)", {"type": "exponential", "rate": 0.5, "steps": 10}]}, "steps": 50}))
    out = tmp_path / "file.png"
    p = run("plot", str(f), "-o", str(out), "--base-lr", "0.1", "--log")
    assert p.returncode == 0, p.stderr
    assert_png(out)
    assert "50 steps, lr = 0.1 x schedule" in p.stdout
    end = [line for line in p.stdout.splitlines() if line.strip().endswith("end")][0].split()
    assert int(end[0]) == 49 and float(end[1]) == pytest.approx(0.1 * 0.5 ** (39 / 10), rel=1e-5)


def test_find_lr_demo_writes_plot(tmp_path: Path) -> None:
    out = tmp_path / "find.png"
    p = run("find-lr", "--demo", "-o", str(out), "--no-progress", "--num-iter", "60")
    assert p.returncode == 0, p.stderr
    assert_png(out)
    lrs = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("steepest", "valley", "minimum/10"):
            lrs[parts[0]] = float(parts[1])
    assert set(lrs) == {"steepest", "valley", "minimum/10"}
    assert all(1e-4 <= v <= 10 for v in lrs.values())
    assert "host copies (check every 10)" in p.stdout


def test_gallery_writes_grid_and_table(tmp_path: Path) -> None:
    out = tmp_path / "gallery.png"
    p = run("gallery", "-o", str(out))
    assert p.returncode == 0, p.stderr
    img = assert_png(out)
    assert img.shape[1] > 1000  # a grid, three panels wide
    for title, text in GALLERY:
        assert text in p.stdout
    row = [line for line in p.stdout.splitlines() if line.startswith("step ")][0]
    assert [float(v) for v in row.split()[-5:]] == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.125], rel=1e-3)


def test_bench_prints_ratio_table() -> None:
    p = run("bench", "--steps", "100", "--repeat", "2", "--groups", "1,8")
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines() if line.split()[:1] in (["StepLR"], ["CosineAnnealingLR"],
                                                                                   ["OneCycleLR"])]
    assert len(rows) == 6
    for r in rows:
        torch_us, core_us, ratio = float(r[2]), float(r[3]), float(r[4])
        assert torch_us > 0 and core_us > 0
        assert ratio == pytest.approx(torch_us / core_us, rel=0.05, abs=0.1)
        assert r[-1] == "yes"  # both ended on the same learning rates
    try:
        import torchsched.lr_scheduler  # noqa: F401
    except ImportError:
        assert "drop-in rows are skipped" in p.stdout
    else:
        assert "drop-in" in p.stdout


def test_bad_spec_exits_2_with_one_line() -> None:
    p = run("plot", "cosin(100) >> linear(10)")
    assert p.returncode == 2
    line = one_line(p.stderr)
    assert line.startswith("torchsched: error: bad spec:") and "did you mean 'cosine'" in line
    assert p.stdout == ""


def test_main_help_in_subprocess() -> None:
    p = run("--help")
    assert p.returncode == 0 and "examples:" in p.stdout and "find-lr --demo" in p.stdout


# ---- in-process: help and errors --------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: torchsched {command}" in out
    assert "examples:" in out and f"torchsched {command}" in out.split("examples:")[1]


@pytest.mark.parametrize(
    "argv, code, text",
    [
        ([], 2, "choose a command"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["plot"], 2, "the following arguments are required: SPEC"),
        (["plot", "cosine(10)", "--steps", "x"], 2, "invalid int value"),
        (["plot", "cosine(10)", "--steps", "1"], 2, "--steps must be an integer >= 2"),
        (["plot", "__import__('os').system('true')"], 2, "bad spec: only builder names can be called"),
        (["plot", "missing.json"], 2, "bad spec: cannot read missing.json"),
        (["find-lr"], 2, "only --demo runs from the command line"),
        (["bench", "--groups", "a,b"], 2, "--groups must be comma-separated integers"),
        (["gallery", "--steps", "0"], 2, "--steps must be an integer >= 2"),
    ],
)
def test_errors_are_one_line(argv: list[str], code: int, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert text in line and "error" in line


def test_unwritable_output_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "cosine(10)", "-o", str(tmp_path / "no" / "such" / "dir.png")]) == 1
    assert "cannot write" in one_line(capsys.readouterr().err)


def test_demo_forwards_arguments(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("torchsched.demo")
    fake.main = lambda argv: seen.append(list(argv)) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchsched.demo", fake)
    assert main(["demo", "--steps", "5", "x"]) == 3
    assert main(["demo", "--", "--help"]) == 3
    assert main(["demo"]) == 3
    assert seen == [["--steps", "5", "x"], ["--help"], []]


def test_demo_missing_module_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torchsched.demo", None)  # import raises ModuleNotFoundError
    assert main(["demo"]) == 1
    assert "torchsched.demo is not available" in one_line(capsys.readouterr().err)


# ---- the spec parser ----------------------------------------------------------------------------------

GOOD = [
    ("warmup(linear, 1000) >> cosine(100000, final=0.1)",
     S.warmup(1000, shape="linear") >> S.cosine(100000, final=0.1)),
    ("0.5 * step(30, gamma=0.1)", S.scale(S.step(30, gamma=0.1), 0.5)),
    ("step(30, gamma=0.1) * 0.5", S.scale(S.step(30, gamma=0.1), 0.5)),
    ("one_cycle(1000, max=1.0)", S.one_cycle(1000, max=1.0)),
    ("one_cycle(1000, max=1e-3, anneal=linear)", S.one_cycle(1000, max=1e-3, anneal="linear")),
    ("warmup(500) * cosine(10_000)", S.product(S.warmup(500), S.cosine(10_000))),
    ("sequence([constant(1), linear(500, init=1, final=0.1)], [100])",
     S.sequence([S.constant(1), S.linear(500, init=1, final=0.1)], [100])),
    ("cyclic(0.1, 1, 200, mode=triangular2)", S.cyclic(0.1, 1, 200, mode="triangular2")),
    ("cyclic(triangular2, 0.1, 1, 200)", S.cyclic(0.1, 1, 200, mode="triangular2")),
    ('anneal(100, shape="1-sqrt")', S.anneal(100, shape="1-sqrt")),
    ("interpolate({0: 1, 10: 2**3})", S.interpolate({0: 1, 10: 8})),
    ("multistep([30, 60], gamma=1/10)", S.multistep([30, 60], gamma=0.1)),
    ("exponential(0.5, 2 * 5, init=-(-2))", S.exponential(0.5, 10, init=2)),
    ("warmup(exponential, 10, init=0.01) >> constant()",
     S.warmup(10, init=0.01, shape="exponential") >> S.constant()),
    ("cosine_restarts(100, decay_mode=swing, decay=0.5)", S.cosine_restarts(100, decay_mode="swing", decay=0.5)),
    ("  cosine(10, clamp=False)\n", S.cosine(10, clamp=False)),
]


@pytest.mark.parametrize("text, expected", GOOD)
def test_good_specs(text: str, expected: S.Schedule) -> None:
    got = spec.parse(text)
    assert got == expected
    steps = np.arange(0, 3000, 7)
    np.testing.assert_array_equal(got.values(steps), expected.values(steps))


@pytest.mark.parametrize("text, _", GOOD)
def test_repr_round_trips(text: str, _: S.Schedule) -> None:
    s = spec.parse(text)
    assert spec.parse(repr(s)) == s


BAD = [
    ("", "empty spec"),
    ("cosin(100)", "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    ("cosine(-1)", "cosine(): steps must be > 0"),
    ("cosine(100, bogus=1)", "unexpected keyword argument 'bogus'"),
    ("cosine(100, final=1, final=2)", "cosine() got 'final' twice"),
    ("warmup(bogus, 10)", "unknown name 'bogus'"),
    ("warmup(linear, cosine, 10)", "takes one shape word"),
    ("warmup(triangular, 10)", "shape must be one of"),
    ("step(linear, 10)", "step() takes no shape word"),
    ("cosine(100) + 1", "operator + does not apply"),
    ("cosine(100) >> 3", "operator >> does not apply"),
    ("cosine(10, clamp=False) >> constant()", "has no fixed end"),
    ("1 +", "invalid syntax"),
    ("3", "got the number 3"),
    ("triangular", "is a shape, not a schedule"),
    ("linear", "linear needs arguments"),
    ("cosine", "cosine needs arguments"),
    ("constant(1e999)", "not finite"),
    ("constant(nan)", "must be finite"),
    ("constant(1/0)", "division by zero"),
    ("constant(10**10**10)", "number too large"),
    ("constant(1 % 2)", "operator % is not allowed"),
    ("__import__('os').system('echo pwned')", "only builder names can be called"),
    ("open('/etc/passwd')", "unknown schedule 'open'"),
    ("cosine(100).values", "Attribute syntax is not allowed"),
    ("cosine(100)[0]", "Subscript syntax is not allowed"),
    ("(lambda: cosine(10))()", "only builder names can be called"),
    ("[cosine(i) for i in [1, 2]]", "ListComp syntax is not allowed"),
    ("cosine(*[10])", "'*' arguments are not allowed"),
    ("cosine(**{'steps': 10})", "'**' arguments are not allowed"),
    ("cosine(x := 10)", "NamedExpr syntax is not allowed"),
    ("cosine(f'{10}')", "JoinedStr syntax is not allowed"),
    ("cosine(" * 100 + "1" + ")" * 100, "nested"),
    ("constant(" + "1" * 30 + ")", "integer too large"),
    ("x" * 30_000, "characters long"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_specs_raise_one_line_value_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        spec.parse(text)
    assert isinstance(info.value, spec.SpecError)
    msg = str(info.value)
    assert message in msg
    assert "\n" not in msg and len(msg) < 300


def test_parser_never_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    """eval and exec are never called, and compile only to build a syntax tree (what ast.parse does)."""
    import ast
    import builtins

    real_compile = builtins.compile
    calls: list[str] = []

    def forbidden(*a: object, **k: object) -> None:
        calls.append("eval/exec")
        raise AssertionError("eval/exec called")

    def tree_only(source: object, filename: object, mode: str, flags: int = 0, *a: object, **k: object) -> object:
        if not flags & ast.PyCF_ONLY_AST:
            calls.append("compile to code")
            raise AssertionError("compile to code object")
        calls.append("ast")
        return real_compile(source, filename, mode, flags, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", tree_only)
    assert spec.parse("warmup(linear, 10) >> cosine(100)") == S.warmup(10) >> S.cosine(100)
    with pytest.raises(spec.SpecError):
        spec.parse("__import__('os')")
    monkeypatch.undo()
    assert calls == ["ast", "ast"]


def test_json_and_yaml_files(tmp_path: Path) -> None:
    expected = S.warmup(100) >> S.cosine(1000, final=0.1)
    forms = [
        "warmup(linear, 100) >> cosine(1000, final=0.1)",
        {"schedule": "warmup(linear, 100) >> cosine(1000, final=0.1)", "steps": 1100},
        {"type": "chain", "schedules": [{"type": "warmup", "args": [100], "shape": "linear"},
                                        {"type": "cosine", "steps": 1000, "final": 0.1}]},
        {"type": "sequence", "schedules": ["warmup(100)", {"type": "cosine", "steps": 1000, "final": 0.1}],
         "boundaries": [100]},
    ]
    for i, form in enumerate(forms):
        f = tmp_path / f"s{i}.json"
        f.write_text(json.dumps(form))
        sched, options = spec.load(f)
        steps = np.arange(0, 1300, 3)
        np.testing.assert_allclose(sched.values(steps), expected.values(steps), rtol=1e-15)
        assert options == ({"steps": 1100} if i == 1 else {})
        assert spec.resolve(str(f))[0] == sched
    nested = {"type": "scale", "factor": 0.5, "schedule": {"type": "product", "schedules": ["warmup(10)", "cosine(50)"]}}
    (tmp_path / "n.json").write_text(json.dumps(nested))
    assert spec.load(tmp_path / "n.json")[0] == 0.5 * (S.warmup(10) * S.cosine(50))

    yml = tmp_path / "s.yaml"
    yml.write_text("schedule: warmup(linear, 100) >> cosine(1000, final=0.1)\nsteps: 1100\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(spec.SpecError, match="needs PyYAML"):
            spec.load(yml)
    else:
        assert spec.load(yml) == (expected, {"steps": 1100})


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "invalid JSON at line 1"),
        ("[1, 2]", "expected a spec string or a mapping"),
        ('{"type": "cosin", "steps": 3}', "unknown schedule type 'cosin'"),
        ('{"steps": 3}', "needs a 'type' key"),
        ('{"schedule": "cosine(10)", "colour": 1}', "unknown keys ['colour']"),
        ('{"schedule": "cosine(10)", "steps": 0}', "steps must be an integer >= 1"),
        ('{"type": "cosine", "steps": -3}', "cosine(): steps must be > 0"),
        ('{"type": "chain", "schedules": []}', "must be a non-empty list"),
        ('{"type": "chain", "schedules": ["cosine(10, clamp=False)", "constant()"]}', "no fixed duration"),
        ('{"type": "cosine", "args": 5}', "args must be a list"),
        ('"cosine(10) >> "', "invalid syntax"),
    ],
)
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(spec.SpecError) as info:
        spec.load(f)
    assert message in str(info.value) and "\n" not in str(info.value)
