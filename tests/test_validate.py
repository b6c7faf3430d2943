"""One check, one message: a bad argument reads the same from every entry point, and names itself.

The entry points are the schedules builders, ``wrap()``, the engine, the spec parser (strings and files),
the command line, ``param_groups`` and ``find_lr``. Each case gives the rule's text once and checks that
every entry point's message holds ``"<argument> <rule>"``.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import torchsched
from torchsched import Engine, _validate, find_lr, param_groups, spec, wrap
from torchsched import schedules as S
from torchsched.cli import main as cli_main


def _raised(call: Callable[[], Any], error: type[BaseException]) -> str:
    with pytest.raises(error) as info:
        call()
    return str(info.value)


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _wrapped_with_lr(lr: Any) -> Any:
    opt = _optimizer()
    opt.param_groups[0]["lr"] = lr  # torch checks its own lr= argument; a group edited later reaches wrap()
    return wrap(opt, S.constant())


def _find_lr(**kwargs: Any) -> Any:
    model = torch.nn.Linear(2, 1)
    args: dict[str, Any] = dict(start_lr=1e-3, end_lr=1.0, num_iter=10, progress=False)
    args.update(kwargs)
    return find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.MSELoss(),
                   [(torch.zeros(4, 2), torch.zeros(4, 1))] * 10, **args)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli_main(argv) == 2
    return capsys.readouterr().err


def _spec_file(tmp_path: Path, node: dict[str, Any]) -> str:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(node))  # json writes NaN for a float nan, and reads it back
    return str(path)


# ---- the same bad value through every entry point --------------------------------------------------

def test_nan_is_not_finite_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rule = "must be finite, got nan"
    file = _spec_file(tmp_path, {"type": "cosine", "steps": math.nan})
    messages = {
        "steps": _raised(lambda: S.cosine(math.nan), ValueError),
        "the lr of param group 0": _raised(lambda: _wrapped_with_lr(math.nan), ValueError),
        "the multiplier for param group 0": _raised(lambda: wrap(_optimizer(), S.constant(), multipliers=[math.nan]),
                                                    ValueError),
        "base_lrs[0]": _raised(lambda: Engine(S.constant(), [math.nan]), ValueError),
        "schedule.json.steps": _raised(lambda: spec.load(file), spec.SpecError),
        "schedule.json.steps ": _cli(["plot", file, "-o", str(tmp_path / "x.png")], capsys),
        "lr": _raised(lambda: param_groups(torch.nn.Linear(2, 1), lr=math.nan), ValueError),
        "start_lr": _raised(lambda: _find_lr(start_lr=math.nan), ValueError),
    }
    for name, message in messages.items():
        assert f"{name.strip()} {rule}" in message, (name, message)


def test_a_negative_count_reads_the_same_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = "steps must be > 0, got -5"
    file = _spec_file(tmp_path, {"type": "cosine", "steps": -5})
    messages = [
        _raised(lambda: S.cosine(-5), ValueError),
        _raised(lambda: spec.parse("cosine(-5)"), spec.SpecError),
        _raised(lambda: spec.load(file), spec.SpecError),
        _cli(["plot", "cosine(-5)"], capsys),
        _cli(["plot", file], capsys),
    ]
    for message in messages:
        assert expected in message, message


def test_a_negative_value_reads_the_same_everywhere() -> None:
    rule = "must be >= 0, got -1.0"
    messages = {
        "value": _raised(lambda: S.constant(-1.0), ValueError),
        "the lr of param group 0": _raised(lambda: _wrapped_with_lr(-1.0), ValueError),
        "the multiplier for param group 0": _raised(lambda: wrap(_optimizer(), S.constant(), multipliers=[-1.0]),
                                                    ValueError),
        "base_lrs[0]": _raised(lambda: Engine(S.constant(), [-1.0]), ValueError),
        "lr": _raised(lambda: param_groups(torch.nn.Linear(2, 1), lr=-1.0), ValueError),
    }
    for name, message in messages.items():
        assert message == f"{name} {rule}", message


def test_a_step_before_zero_reads_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    sched = S.cosine(10)
    engine = Engine(sched, [1.0])
    opt = wrap(_optimizer(), sched)
    state = opt.state_dict()
    state["torchsched"]["step"] = -1

    def set_step() -> None:
        engine.step = -1

    same = {
        _raised(lambda: sched(-1), ValueError),
        _raised(lambda: Engine(sched, [1.0], step=-1), ValueError),
        _raised(set_step, ValueError),
    }
    assert same == {"step must be an integer >= 0, got -1"}
    assert _raised(lambda: opt.load_state_dict(state), ValueError) == \
        "state_dict['torchsched']['step'] must be an integer >= 0, got -1"
    assert "--steps must be an integer >= 2, got -1" in _cli(["plot", "cosine(10)", "--steps", "-1"], capsys)
    assert "num_iter must be an integer >= 10, got -1" in _raised(lambda: _find_lr(num_iter=-1), ValueError)


@pytest.mark.parametrize("bad, shown", [(True, "True (bool)"), ("10", "'10' (str)")])
def test_a_bool_or_a_string_is_not_a_number_anywhere(bad: Any, shown: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rule = f"must be a real number, got {shown}"
    text = f"cosine({bad!r})"
    messages = {
        "steps": _raised(lambda: S.cosine(bad), TypeError),
        "cosine(): steps": _raised(lambda: spec.parse(text), spec.SpecError),
        "cosine(): steps ": _cli(["plot", text], capsys),
        "the multiplier for param group 0": _raised(lambda: wrap(_optimizer(), S.constant(), multipliers=[bad]),
                                                    TypeError),
        "base_lrs[0]": _raised(lambda: Engine(S.constant(), [bad]), TypeError),
        "lr": _raised(lambda: param_groups(torch.nn.Linear(2, 1), lr=bad), TypeError),
        "start_lr": _raised(lambda: _find_lr(start_lr=bad), TypeError),
    }
    for name, message in messages.items():
        assert f"{name.strip()} {rule}" in message, (name, message)


def test_a_bool_is_not_a_count_anywhere() -> None:
    messages = {
        "step must be an integer >= 0, got True": [
            _raised(lambda: S.cosine(10)(True), TypeError),  # type: ignore[arg-type]
            _raised(lambda: Engine(S.cosine(10), [1.0], step=True), ValueError),
        ],
        "num_iter must be an integer >= 10, got True": [_raised(lambda: _find_lr(num_iter=True), TypeError)],
        "limit must be an integer >= 0, got True": [_raised(lambda: S.cosine_restarts(10, limit=True), ValueError)],
    }
    for expected, got in messages.items():
        assert got == [expected] * len(got)


def test_a_non_schedule_reads_the_same_everywhere() -> None:
    expected = "schedule must be a torchsched schedule (torchsched.schedules), got 'cosine(10)'"
    assert {
        _raised(lambda: S.scale("cosine(10)", 2.0), TypeError),  # type: ignore[arg-type]
        _raised(lambda: S.shift("cosine(10)", 2), TypeError),  # type: ignore[arg-type]
        _raised(lambda: wrap(_optimizer(), "cosine(10)"), TypeError),  # type: ignore[arg-type]
    } == {expected}
    assert _raised(lambda: Engine([S.constant(), "x"], [0.1, 0.1]), TypeError) == \
        "schedules[1] must be a torchsched schedule (torchsched.schedules), got 'x'"


def test_a_bad_choice_reads_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    expected = "shape must be one of ['linear', 'exponential', 'constant'], got 'triangular'"
    assert _raised(lambda: S.warmup(10, shape="triangular"), ValueError) == expected
    assert expected in _raised(lambda: spec.parse("warmup(triangular, 10)"), spec.SpecError)
    assert expected in _raised(lambda: spec.parse("warmup(10, shape='triangular')"), spec.SpecError)
    assert expected in _cli(["plot", "warmup(triangular, 10)"], capsys)


# ---- the checks themselves -----------------------------------------------------------------------

def test_checks_return_the_converted_value() -> None:
    assert _validate.real("x", np.float32(0.5)) == 0.5 and type(_validate.real("x", 3)) is float
    assert _validate.non_negative("x", 0) == 0.0 and _validate.positive("x", 2) == 2.0
    assert _validate.in_interval("x", 1, 0, 1, low_open=True) == 1.0
    assert _validate.integer("x", np.int64(7), 7) == 7 and _validate.step_count("x", 2**63 - 1) == 2**63 - 1
    assert _validate.choice("x", "b", ("a", "b")) == 1
    assert _validate.sorted_steps("x", [0, 2, 2]) == [0.0, 2.0, 2.0]
    assert _validate.non_negative_list("x", (1, 2.5), 2) == [1.0, 2.5]
    assert _validate.scalar("x", torch.tensor([0.25])) == 0.25 and _validate.scalar("x", 3) == 3
    assert _validate.step_array("x", [3.0, 1]).tolist() == [3, 1]
    sched = S.constant()
    assert _validate.schedule("x", sched) is sched


@pytest.mark.parametrize("call, error, message", [
    (lambda: _validate.real("x", None), TypeError, "x must be a real number, got None (NoneType)"),
    (lambda: _validate.real("x", -math.inf), ValueError, "x must be finite, got -inf"),
    (lambda: _validate.greater_than("x", 1, 1), ValueError, "x must be > 1, got 1"),
    (lambda: _validate.in_interval("x", 0, 0, 1, low_open=True), ValueError, "x must be in (0, 1], got 0"),
    (lambda: _validate.in_interval("x", 1.0, 0, 1, high_open=True), ValueError, "x must be in [0, 1), got 1.0"),
    (lambda: _validate.integer("x", 2, 3), ValueError, "x must be an integer >= 3, got 2"),
    (lambda: _validate.step_count("x", 2**63), ValueError, "x must be < 2**63, got 9223372036854775808"),
    (lambda: _validate.sorted_steps("x", [1, 1], strict=True), ValueError, "x must be sorted and distinct, got [1, 1]"),
    (lambda: _validate.sorted_steps("x", [0, -1]), ValueError, "x[1] must be >= 0, got -1"),
    (lambda: _validate.non_negative_list("x", [1.0], 2), ValueError, "x has 1 entries for 2 groups"),
    (lambda: _validate.scalar("x", torch.zeros(2)), ValueError, "x must be a number or a 1-element tensor, got a "
                                                                "tensor of shape (2,)"),
    (lambda: _validate.step_range("x", range(-2, 5)), ValueError, "x must be >= 0, got -2"),
    (lambda: _validate.step_array("x", ["a"]), TypeError, "x must be integers, got dtype <U1"),
    (lambda: _validate.step_array("x", np.array([[1, -4]])), ValueError, "x must be >= 0, got -4"),
])
def test_each_check_says_what_it_wants(call: Callable[[], Any], error: type[BaseException], message: str) -> None:
    assert _raised(call, error) == message


def test_a_non_integer_count_is_both_a_type_and_a_value_error() -> None:
    for bad in (1.5, True, "3", None):
        with pytest.raises(_validate.NotAnIntegerError) as info:
            _validate.integer("n", bad, 1)
        assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
        assert str(info.value) == f"n must be an integer >= 1, got {bad!r}"


def test_the_schedule_check_needs_an_emit_method() -> None:
    class Emits:
        def _emit(self, builder: Any) -> None:
            pass

    assert _validate.is_schedule(Emits()) and _validate.is_schedule(S.cosine(3))
    assert not _validate.is_schedule(S.cosine) and not _validate.is_schedule(lambda t: 1.0)

    class NotCallable:
        _emit = None

    assert not _validate.is_schedule(NotCallable())


def test_modules_that_use_the_checks_do_not_spell_their_messages() -> None:
    """A module that imports the validation module writes none of its rules itself (a copy would drift)."""
    rules = ("must be finite, got", "must be a real number", "must be >= 0, got", "must be > 0, got",
             "must be an integer", "must be one of", "must be sorted", "must be a torchsched schedule",
             "must be in (", "must be in [")
    root = Path(torchsched.__file__).parent
    checked = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "_validate.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        uses = any(isinstance(node, ast.ImportFrom) and any(a.name == "_validate" for a in node.names)
                   or isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_validate")
                   for node in ast.walk(tree))
        if not uses:
            continue
        checked.append(path.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and not _is_docstring(node, tree):
                assert not any(rule in node.value for rule in rules), f"{path.name}: {node.value!r}"
    assert {"schedules.py", "optim.py", "spec.py", "cli.py", "_engine.py", "param_groups.py",
            "lr_finder.py"} <= set(checked)


def _is_docstring(node: ast.Constant, tree: ast.AST) -> bool:
    return any(isinstance(parent, (ast.Module, ast.FunctionDef, ast.ClassDef)) and parent.body
               and isinstance(parent.body[0], ast.Expr) and parent.body[0].value is node
               for parent in ast.walk(tree))
