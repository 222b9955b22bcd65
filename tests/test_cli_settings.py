"""The CLI surface: settings precedence, config errors, version, help without torch."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import pytest
from typer.testing import CliRunner

from slr import __version__
from slr.cli import app
from slr.config import resolve_settings
from slr.errors import ConfigError
from slr.settings import TrainSettings

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"slr {__version__}"


def test_python_dash_m_runs():
    proc = subprocess.run([sys.executable, "-m", "slr", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["validate", "--help"]])
def test_help_does_not_import_torch(args):
    code = (
        "import sys\n"
        "from slr.cli import app\n"
        f"try:\n    app({args!r}, prog_name='slr')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_guide_defaults():
    s = TrainSettings(model="transformer")
    assert s.batch_size == 32
    assert (s.num_gloss, s.num_cat) == (None, None)  # taken from the data (issue 22); the guide's flags set them
    assert (s.kp_key, s.feature_key, s.scheduler_patience) == ("X", "X2048", 5)
    assert (s.alpha, s.beta, s.gradient_accumulation_steps, s.num_workers) == (0.5, 0.5, 1, 0)
    assert s.grad_clip is None and s.early_stop is None and s.resume is None
    assert not any([s.amp, s.compile_model, s.auto_workers, s.auto_batch_size, s.enable_parallel, s.pin_memory])


def test_every_default_changed_from_the_guide_is_listed_and_its_flag_restores_the_guide():
    """slr changed some of the guide's defaults (docs/results.md, "Signer shift"): each one is in
    GUIDE_VALUES, in the user guide's table of changed defaults, and its flag gives the guide's value."""
    from slr.settings import GUIDE_VALUES

    default = TrainSettings()
    guide_doc = (Path(__file__).resolve().parents[1] / "docs" / "user-guide.md").read_text(encoding="utf-8")
    table = guide_doc[guide_doc.index("## Defaults that differ from the old guide") :]
    flags = {}
    for name, value in GUIDE_VALUES.items():
        assert getattr(default, name) != value, name  # listed only where it really changed
        flag = f"--{name.replace('_', '-')}"
        assert flag in table, flag
        flags[name] = value
    restored = resolve_settings(TrainSettings, flags)
    assert {name: getattr(restored, name) for name in GUIDE_VALUES} == GUIDE_VALUES


def test_precedence_default_then_file_then_flag(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('model = "transformer"\nlr = 0.001\nepochs = 7\nbatch-size = 16\n')
    s = resolve_settings(TrainSettings, {"epochs": "9"}, cfg)
    assert s.lr == 0.001  # from the file
    assert s.epochs == 9  # the flag wins over the file
    assert s.batch_size == 16  # dashes work in files
    assert s.weight_decay == TrainSettings.model_fields["weight_decay"].default  # neither says anything


def test_yaml_config_and_explicit_none_flag(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: iv3_gru\nscheduler: cosine\ngrad_clip: 1.0\n")
    s = resolve_settings(TrainSettings, {"grad_clip": None}, cfg)
    assert s.model == "iv3_gru" and s.scheduler == "cosine" and s.grad_clip is None


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("lr = 0.1\nlearning_rate = 3\n", ".toml", "unknown setting 'learning_rate'"),
        ("epochs: many\n", ".yaml", "--epochs"),
        ("lr = [\n", ".toml", "not valid TOML"),
        ("- a\n- b\n", ".yaml", "expected a mapping"),
        ("lr: 0.1\n", ".json", "unknown config format"),
        ("scheduler: step\n", ".yaml", "--scheduler"),
    ],
)
def test_config_errors_name_the_file(tmp_path, text, suffix, message):
    cfg = tmp_path / f"bad{suffix}"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        resolve_settings(TrainSettings, {"model": "transformer"}, cfg)
    assert message in str(info.value)
    assert str(cfg) in str(info.value)


def test_unknown_key_suggests_the_flag(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: transformer\nbatchsize: 8\n")
    result = runner.invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "did you mean 'batch-size'" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "transformer", "--lr", "abc"], "--lr"),
        (["train", "transformer", "--epochs", "0"], "--epochs"),
        (["train", "lstm"], "MODEL"),
        (["smoke"], "MODEL is required"),
        (["train", "transformer", "--d-model", "100", "--num-heads", "8"], "not divisible"),
        (["train", "transformer", "--config", "/nonexistent/cfg.yaml"], "config file not found"),
        (["train", "transformer", "--alpha", "0", "--beta", "0"], "nothing to learn"),
        (["train", "transformer", "--alpha", "inf"], "--alpha: Input should be a finite number"),
        (["train", "transformer", "--weight-decay", "nan"], "--weight-decay: Input should be a finite number"),
        (["train", "transformer", "--seed", "99999999999999999999"], "--seed: Input should be less than"),
    ],
)
def test_bad_values_exit_2_without_traceback(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_every_guide_flag_exists():
    guide_flags = [
        "--epochs", "--batch-size", "--lr", "--num-gloss", "--num-cat", "--keypoints-train",
        "--keypoints-val", "--features-train", "--features-val", "--labels-train-csv",
        "--labels-val-csv", "--kp-key", "--feature-key", "--amp", "--compile-model",
        "--auto-workers", "--auto-batch-size", "--enable-parallel", "--gradient-accumulation-steps",
        "--num-workers", "--pin-memory", "--weight-decay", "--grad-clip", "--scheduler",
        "--scheduler-patience", "--early-stop", "--resume", "--alpha", "--beta", "--log-csv",
    ]
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    missing = [f for f in guide_flags if f not in result.output]
    assert not missing


def test_help_shows_defaults_from_settings():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    # The help style (rich panels or click's list) is chosen from the terminal when slr is
    # imported, and the list wraps its lines: compare the words, not the line breaks.
    text = " ".join(result.output.split())
    assert "(default: 0.001)" in text and "(default: 32)" in text


def test_guide_spelling_of_model_flag_is_accepted():
    result = runner.invoke(app, ["train", "--model", "transformer", "--num-gloss", "4"])
    assert result.exit_code == 2 and "--keypoints-train DIR is required" in result.output  # MODEL was taken
    result = runner.invoke(app, ["train", "iv3_gru", "--model", "transformer"])
    assert result.exit_code == 2 and "disagree" in result.output


def test_a_yaml_boolean_is_not_a_number(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: true\n")
    result = runner.invoke(app, ["train", "transformer", "--config", str(cfg)])
    assert result.exit_code == 2 and "--epochs: expected a number" in result.output


def test_a_yaml_key_given_twice_and_a_directory_as_config_are_refused(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: 3\nlr: 0.001\nepochs: 5\n")
    result = runner.invoke(app, ["train", "transformer", "--config", str(cfg)])
    assert result.exit_code == 2 and "setting 'epochs' is given twice" in result.output
    result = runner.invoke(app, ["train", "transformer", "--config", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory, not a config file" in result.output


def test_a_word_setting_that_also_takes_none_says_so_in_help_and_errors():
    # `--scheduler none` is the guide's constant rate (the table of changed defaults names it).
    with pytest.raises(ConfigError) as caught:
        resolve_settings(TrainSettings, {"scheduler": "bogus"})
    assert "or none" in str(caught.value) and "'bogus'" in str(caught.value)
    from slr.cli_params import _metavar

    assert _metavar(TrainSettings.model_fields["scheduler"].annotation) == "[plateau|cosine|warmup_cosine|none]"
    assert _metavar(TrainSettings.model_fields["pooling"].annotation) == "[mean|max|cls]"  # no none to take


@pytest.mark.parametrize("model", ["TrainSettings", "ExtractSettings", "EvaluateSettings", "PredictSettings",
                                   "CompareSettings"])
@pytest.mark.parametrize("flag", ["--classes", "--classes-csv"])
def test_the_class_names_file_is_classes_everywhere_and_the_old_spelling_still_works(tmp_path, model, flag):
    """Before: --classes-csv in train and extract, --classes in evaluate, predict and compare."""
    import typer as typer_module

    import slr.settings
    from slr.cli_params import settings_command

    settings_model = getattr(slr.settings, model)
    seen = {}

    @settings_command(settings_model)
    def fake(flags):
        seen.update(flags)

    test_app = typer_module.Typer()
    test_app.command()(fake)
    result = CliRunner().invoke(test_app, [flag, str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    field = "classes" if "classes" in settings_model.model_fields else "classes_csv"
    assert seen == {field: str(tmp_path / "c.csv")}
