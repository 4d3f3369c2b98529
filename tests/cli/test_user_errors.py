"""One user-error type: bad input prints its message alone; anything else prints its type too."""

import argparse
import importlib
import inspect

import pytest

from segstudio.cli import build_parser, main
from segstudio.cli.common import CliError, one_line
from segstudio.core.errors import BadValue, UserError, describe
from segstudio.io.registry import EXPORT_FORMATS, IMPORT_FORMATS

USER_ERRORS = [
    ("segstudio.core.project", "ProjectError"),
    ("segstudio.core.store", "StoreError"),
    ("segstudio.core.imageio", "ImageDecodeError"),
    ("segstudio.io.common", "FormatError"),
    ("segstudio.io.export_target", "ExportTargetError"),
    ("segstudio.cli.common", "CliError"),
    ("segstudio.inference.sam.spec", "SamUnavailable"),
    ("segstudio.inference.runtime.weights_catalog", "WeightsFileError"),
]
TORCH_ERRORS = [
    ("segstudio.inference.runtime.checkpoint", "CheckpointError"),
    ("segstudio.inference.runtime.device", "DeviceError"),
    ("segstudio.inference.training.common", "TrainingError"),
    ("segstudio.inference.runtime.pretrained", "WeightsUnavailable"),
]


@pytest.mark.parametrize("module,name", USER_ERRORS + TORCH_ERRORS)
def test_every_bad_input_error_is_a_user_error(module, name):
    if (module, name) in TORCH_ERRORS:
        pytest.importorskip("torch")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, UserError)
    assert one_line(cls("no such folder\nsecond line")) == "no such folder"
    assert describe(cls("no such folder")) == "no such folder"


def test_other_errors_keep_their_type_name():
    assert one_line(KeyError("x")) == "KeyError: 'x'"
    assert one_line(ValueError("plain")) == "ValueError: plain"
    assert one_line(RuntimeError()) == "RuntimeError: RuntimeError"
    assert describe(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"


def test_bad_value_is_still_a_value_error():
    from segstudio.core.records import parse_statuses
    with pytest.raises(ValueError) as e:
        parse_statuses("done,finished")
    assert isinstance(e.value, BadValue) and one_line(e.value).startswith("unknown status finished")


def test_every_command_runs_through_its_registered_function():
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == ["info", "check", "import", "export", "predict", "train", "evaluate",
                                 "propagate", "weights", "models", "store"]
    parsers = dict(sub.choices)
    store = parsers.pop("store")  # a group: store init, grant, revoke, members, copy
    nested = next(a for a in store._actions if isinstance(a, argparse._SubParsersAction))
    assert list(nested.choices) == ["init", "grant", "revoke", "members", "copy"]
    parsers.update({f"store {k}": v for k, v in nested.choices.items()})
    for name, sp in parsers.items():
        func = sp.get_default("func")
        assert callable(func) and inspect.getmodule(func).__name__.startswith("segstudio.cli."), name


def test_format_choices_come_from_the_registry():
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for cmd, formats in (("import", IMPORT_FORMATS), ("export", EXPORT_FORMATS)):
        fmt = next(a for a in sub.choices[cmd]._actions if a.dest == "format")
        assert list(fmt.choices) == list(formats)


def test_cli_error_from_an_option_is_one_line_without_type(image_folder, tmp_path, capsys):
    code = main(["predict", str(image_folder), "--model", "unet", "--batch", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err == "segstudio: error: --batch must be 1 or more\n"
    assert issubclass(CliError, UserError)


def test_a_surprise_is_shown_with_its_type(image_folder, capsys, monkeypatch):
    from segstudio.cli import project
    def boom(p):
        raise KeyError("status")
    monkeypatch.setattr(project, "info_dict", boom)
    assert main(["info", str(image_folder)]) == 2
    assert capsys.readouterr().err == "segstudio: error: KeyError: 'status'\n"
