"""The `slr` command line: one thin function per subcommand.

Each function turns its flags (and `--config FILE`) into a settings model from slr/settings.py and
calls one library function. Library modules are imported inside the functions so that
`slr --help` and `slr validate` never wait for torch.
"""

from __future__ import annotations

import errno
import functools
import inspect
import itertools
import shlex
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from slr import __version__
from slr.cli_params import settings_command
from slr.config import resolve_settings
from slr.errors import SlrError, command
from slr.settings import (
    CV_SETS_PER_FOLD,
    CompareSettings,
    CvSettings,
    EvaluateSettings,
    ExportSettings,
    ExtractSettings,
    HwinfoSettings,
    ImportSettings,
    LiveSettings,
    PlotSettings,
    PredictSettings,
    ResumeSettings,
    SmokeSettings,
    SplitSettings,
    TrainSettings,
    ValidateSettings,
)
from slr.ui.console import (
    CLOSED_PIPE_STATUS,
    discard_stream,
    flush_stdout_or_exit,
    is_closed_output,
    keep_going_without_stdout,
    print_error,
    print_json,
    print_notice,
)

def _help_style() -> str | None:
    """Rich panels on a terminal of 100 columns or more; below that, and when help goes to a file or
    a pipe (where rich lays out 80 columns), they cut long flag names (`--gradient-accumulati…`) so
    they can't be copied, and click's plain list, which never cuts them, reads better."""
    on_terminal = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    return "rich" if on_terminal and shutil.get_terminal_size((120, 24)).columns >= 100 else None


app = typer.Typer(
    name="slr",
    help="Train, resume, check and compare sign-language recognition models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=_help_style(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)
_state = {"debug": False}

CONFIG = inspect.Parameter(
    "config",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(None, "--config", metavar="FILE", help="YAML or TOML settings file; flags override it."),
    annotation=Optional[Path],
)
CHECKPOINT = inspect.Parameter(
    "checkpoint",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Argument(..., metavar="CKPT", help="Checkpoint to continue from (a *_last.pt)."),
    annotation=Path,
)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show input errors as one line and an exit status; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SlrError as exc:
            _report(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _report("interrupted")
            raise typer.Exit(130) from None
        except OSError as exc:
            if is_closed_output(exc) and exc.filename is None:  # `slr ... | head -1`: stdout went away
                discard_stream(sys.stdout)
                raise typer.Exit(CLOSED_PIPE_STATUS) from None
            where = f"{exc.filename}: " if exc.filename else ""
            full = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
            _report(f"{where}{exc.strerror or exc}{full}")
            raise typer.Exit(2) from None
        except Exception as exc:  # a bug in slr: still one line, with a way to see more
            _report(f"internal error: {type(exc).__name__}: {exc} (run `slr --debug ...` for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def _report(message: str) -> None:
    if _state["debug"]:
        traceback.print_exc(file=sys.stderr)
    print_error(message)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """slr: sign-language recognition training."""
    _state["debug"] = debug


@app.command()
@settings_command(ValidateSettings, extra=[CONFIG])
@guarded
def validate(flags: dict, config: Optional[Path]) -> None:
    """Check clip files and labels: exit 0 when clean (warnings allowed), 1 on errors, 2 on usage errors."""
    settings = resolve_settings(ValidateSettings, flags, config)
    from slr.data.validate import run_validate
    from slr.ui.validate_view import print_validation_json, print_validation_report

    report = run_validate(settings)
    (print_validation_json if settings.json_output else print_validation_report)(report)
    raise typer.Exit(1 if report.errors else 0)


@app.command()
@settings_command(TrainSettings, extra=[CONFIG])
@guarded
def train(flags: dict, config: Optional[Path]) -> None:
    """Train MODEL (transformer or iv3_gru) on clip directories."""
    settings = resolve_settings(TrainSettings, flags, config)
    if settings.smoke_test:  # the guide's `train.py --model X --smoke-test`
        shared = {k: getattr(settings, k) for k in settings.model_fields_set if k in SmokeSettings.model_fields}
        _smoke(SmokeSettings(**{**shared, "model": settings.model}))
    if settings.resume == "auto":  # the output folder's _last.pt, or a new run (slr/engine/resume.py)
        from slr.engine.resume import find_resumable

        settings = settings.model_copy(update={"resume": find_resumable(settings)})
    if settings.resume is not None:  # the guide's `train.py --resume CKPT ...`: the same as `slr resume`
        given = {k: v for k, v in flags.items() if k != "resume"}
        _train(ResumeSettings(checkpoint=settings.resume, config=config, overrides=given))
    _train(settings)


_RESUME_FIELDS = [n for n in TrainSettings.model_fields if n not in ("model", "resume", "smoke_test")]


@app.command()
@settings_command(TrainSettings, fields=_RESUME_FIELDS, extra=[CHECKPOINT, CONFIG],
                  default_note={"*": "from the checkpoint", "output_dir": "the checkpoint's folder"})
@guarded
def resume(flags: dict, checkpoint: Path, config: Optional[Path]) -> None:
    """Continue a run from CKPT with its stored settings; a config file and flags given here override them.

    Outputs go beside CKPT (unless --output-dir); --epochs stays the total.
    """
    _train(ResumeSettings(checkpoint=checkpoint, config=config, overrides=flags))


def _train(request: TrainSettings | ResumeSettings) -> None:
    """Train or resume, showing progress; the curves are drawn after the run."""
    from slr.engine.run import plan_resume, train as run_train
    from slr.engine.training import Interrupted
    from slr.ui.training_view import TrainingView, show_outcome

    keep_going_without_stdout()  # `slr train ... | head` must not end the run
    plan = plan_resume(request) if isinstance(request, ResumeSettings) else None
    settings = plan.settings if plan is not None else request
    view = TrainingView(log_every_s=settings.log_every_s)
    try:
        outcome = run_train(settings, view, resume=plan)
    except Interrupted as stop:  # Ctrl-C, SIGTERM or SIGHUP: exit 130, 143 or 129
        view.note(f"interrupted by {stop.description}: resumable checkpoint written to {stop.path}; continue with "
                  f"{command('resume', shlex.quote(str(stop.path)))}")
        raise typer.Exit(stop.exit_status) from None
    if not (outcome.is_main and outcome.trained):
        raise typer.Exit(0)
    curves, problem = None, None
    if settings.plots and outcome.history:
        try:
            from slr.analysis.plots import plot_training_curves

            curves = plot_training_curves(outcome.paths.log_csv)
        except (SlrError, OSError) as exc:  # the run itself succeeded: the curves are a bonus
            problem = f"training curves not drawn: {exc}; {command('plot', shlex.quote(str(outcome.paths.log_csv)))} draws them later"
        except ImportError:
            pass
    show_outcome(view, outcome, curves)
    if problem:
        print_notice(problem)
    raise typer.Exit(0)


@app.command()
@settings_command(SmokeSettings, extra=[CONFIG])
@guarded
def smoke(flags: dict, config: Optional[Path]) -> None:
    """Train a few steps on synthetic clips: checks the install, the trainer, the model and the checkpoint."""
    _smoke(resolve_settings(SmokeSettings, flags, config))


def _smoke(settings: SmokeSettings) -> None:
    from slr.engine.smoke import run_smoke
    from slr.ui.smoke_view import show_smoke

    report = run_smoke(settings, on_note=print_notice)
    show_smoke(report)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
@settings_command(HwinfoSettings, extra=[CONFIG])
@guarded
def hwinfo(flags: dict, config: Optional[Path]) -> None:
    """Show the device training would use, and what --auto-workers / --auto-batch-size would pick
    (--probe MODEL: the batch size measured with real training steps here)."""
    settings = resolve_settings(HwinfoSettings, flags, config)
    from slr.engine.hwinfo import run_hwinfo
    from slr.ui.hwinfo_view import render_hwinfo

    report = run_hwinfo(settings)
    print_json(report) if settings.json_output else render_hwinfo(report)


CLIPS = inspect.Parameter(
    "clips",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Argument(..., metavar="CLIP.npz|VIDEO...", help="Clip files or videos to classify.",
                           show_default=False),
    annotation=list[Path],
)


MORE_CHECKPOINTS = inspect.Parameter(
    "more_checkpoints",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Argument(None, metavar="[CKPT...]", show_default=False,
                           help="More checkpoints with the same classes and clip layout: their probabilities are averaged."),
    annotation=Optional[list[Path]],
)


def _with_ensemble(flags: dict, more: Optional[list[Path]]) -> dict:
    """Checkpoints after the first make an ensemble (slr/analysis/ensemble.py)."""
    return {**flags, "ensemble": list(more)} if more else flags


@app.command()
@settings_command(EvaluateSettings, fields=[n for n in EvaluateSettings.model_fields if n != "ensemble"],
                  extra=[MORE_CHECKPOINTS, CONFIG])
@guarded
def evaluate(flags: dict, more_checkpoints: Optional[list[Path]], config: Optional[Path]) -> None:
    """Accuracy (top-1, top-5), macro F1, per-class results and confusion matrices of CKPT on labelled clips.

    Several CKPTs are evaluated as one ensemble (the average of their probabilities).
    """
    settings = resolve_settings(EvaluateSettings, _with_ensemble(flags, more_checkpoints), config)
    from slr.analysis.evaluate import run_evaluate
    from slr.ui.evaluate_view import print_evaluation, print_evaluation_json

    report = run_evaluate(settings)
    (print_evaluation_json if settings.json_output else print_evaluation)(report)


@app.command()
@settings_command(PredictSettings, fields=[n for n in PredictSettings.model_fields if n not in ("clips", "ensemble")],
                  extra=[CLIPS, CONFIG])
@guarded
def predict(flags: dict, clips: list[Path], config: Optional[Path]) -> None:
    """The top-k glosses and the category of each clip or video, by name, with probabilities; --window for sentences.

    `slr predict CKPT CKPT... CLIP...`: the .pt files right after CKPT join it in an ensemble.
    """
    more = list(itertools.takewhile(lambda p: p.suffix == ".pt", clips))  # clips are .npz, videos .mp4 etc.
    flags = _with_ensemble(flags, more)
    settings = resolve_settings(PredictSettings, {**flags, "clips": clips[len(more):]}, config)
    from slr.analysis.predict import run_predict
    from slr.ui.predict_view import print_predictions, print_predictions_json

    result = run_predict(settings)
    for notice in result.notices:  # how videos were extracted, frame times taken
        print_notice(notice)
    if result.predictions:
        (print_predictions_json if settings.json_output else print_predictions)(result.predictions)
    error = result.problem_error()  # the inputs that could not be used: named after the others' answers
    if error is not None:
        raise error


@app.command()
@settings_command(LiveSettings, fields=[n for n in LiveSettings.model_fields if n != "backbone_weights"],
                  extra=[CONFIG])
@guarded
def live(flags: dict, config: Optional[Path]) -> None:
    """The sign being made now, from a camera (--source 0), a video file or a stream; Ctrl-C stops."""
    settings = resolve_settings(LiveSettings, flags, config)
    from slr.analysis.live import run_live
    from slr.ui.live_view import LiveView

    view = LiveView(json_lines=settings.json_lines, show=settings.show)
    try:
        run_live(settings, view)
    finally:
        view.close()


@app.command()
@settings_command(ExportSettings, fields=[n for n in ExportSettings.model_fields if n != "ensemble"],
                  extra=[MORE_CHECKPOINTS, CONFIG])
@guarded
def export(flags: dict, more_checkpoints: Optional[list[Path]], config: Optional[Path]) -> None:
    """Write CKPT's model as TorchScript or ONNX, checked against PyTorch on sample clips.

    Several CKPTs: one graph that averages their probabilities.
    """
    settings = resolve_settings(ExportSettings, _with_ensemble(flags, more_checkpoints), config)
    from slr.analysis.export import run_export
    from slr.ui.evaluate_view import print_export

    print_export(run_export(settings))


@app.command()
@settings_command(PlotSettings, extra=[CONFIG])
@guarded
def plot(flags: dict, config: Optional[Path]) -> None:
    """Draw the training curves of a log CSV as a PNG."""
    settings = resolve_settings(PlotSettings, flags, config)
    from slr.analysis.plots import plot_training_curves

    from slr.ui.console import shown_name

    typer.echo(f"training curves: {shown_name(plot_training_curves(settings.log_csv, settings.output))}")


CHECKPOINTS = inspect.Parameter(
    "checkpoints",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Argument(..., metavar="CKPT...", help="Checkpoints to compare (two or more).", show_default=False),
    annotation=list[Path],
)


@app.command()
@settings_command(CompareSettings, fields=[n for n in CompareSettings.model_fields if n != "checkpoints"],
                  extra=[CHECKPOINTS, CONFIG])
@guarded
def compare(flags: dict, checkpoints: list[Path], config: Optional[Path]) -> None:
    """Checkpoints side by side on the same recordings: accuracy, F1, McNemar's test, differing classes, curves."""
    settings = resolve_settings(CompareSettings, {**flags, "checkpoints": checkpoints}, config)
    from slr.analysis.compare import compare as run_comparison
    from slr.ui.compare_view import print_comparison, print_comparison_json

    comparison = run_comparison(settings)
    (print_comparison_json if settings.json_output else print_comparison)(comparison)


@app.command()
@settings_command(SplitSettings, extra=[CONFIG])
@guarded
def split(flags: dict, config: Optional[Path]) -> None:
    """Write train and val (and test) label files beside labels.csv, with no group (signer, session) in two splits."""
    settings = resolve_settings(SplitSettings, flags, config)
    from slr.data.split import split_directory
    from slr.ui.console import print_notice
    from slr.ui.split_view import print_split

    result = split_directory(settings)
    print_split(result, as_json=settings.json_output)
    for text in result.notices:
        print_notice(text)


RECIPES = inspect.Parameter(
    "recipes",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Option(None, "--recipe", metavar="FILE", help=CvSettings.model_fields["recipes"].description,
                         show_default=False),
    annotation=Optional[list[Path]],
)


#: `slr cv`'s flags: its own first, then every train flag but those it sets per fold (data, labels, outputs).
_CV_FIELDS = ["model", *(n for n in CvSettings.model_fields if n not in TrainSettings.model_fields and n != "recipes"),
              *(n for n in TrainSettings.model_fields if n == "output_dir" or n not in (*CV_SETS_PER_FOLD, "model"))]


@app.command()
@settings_command(CvSettings, fields=_CV_FIELDS, extra=[RECIPES, CONFIG])
@guarded
def cv(flags: dict, recipes: Optional[list[Path]], config: Optional[Path]) -> None:
    """Cross-validate by group: one run per fold and recipe, each scored once on groups it never saw."""
    settings = resolve_settings(CvSettings, {**flags, **({"recipes": recipes} if recipes else {})}, config)
    from slr.crossval.runner import CvInterrupted, run_cv
    from slr.ui.cv_view import CvView, print_cv_json, print_cv_report

    keep_going_without_stdout()
    view = CvView(settings.log_every_s, for_json=settings.json_output)
    try:
        report = run_cv(settings, view)
    except CvInterrupted as stop:
        where = f" during {stop.where}" if stop.where else ""
        print_notice(f"interrupted by {stop.description}{where}: run the same command again to continue (finished "
                     "folds are kept; a fold in progress continues from its _last.pt)")
        raise typer.Exit(stop.exit_status) from None
    (print_cv_json if settings.json_output else print_cv_report)(report)


VIDEOS = inspect.Parameter(
    "videos",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Argument(..., metavar="VIDEO...", help="Video files, or folders of videos.", show_default=False),
    annotation=list[Path],
)


@app.command()
@settings_command(ExtractSettings, fields=[n for n in ExtractSettings.model_fields if n != "videos"],
                  extra=[VIDEOS, CONFIG])
@guarded
def extract(flags: dict, videos: list[Path], config: Optional[Path]) -> None:
    """Make one clip per video (MediaPipe Holistic keypoints, optionally InceptionV3 features), as `slr train` reads them."""
    settings = resolve_settings(ExtractSettings, {**flags, "videos": videos}, config)
    from slr.extract.command import extract_from_settings
    from slr.extract.stop import ExtractInterrupted, stop_signals_interrupt
    from slr.ui.extract_view import ExtractProgress, print_extraction

    view = ExtractProgress()
    try:
        with stop_signals_interrupt():
            result = extract_from_settings(settings, view)
    except ExtractInterrupted as stop:  # SIGTERM or SIGHUP: exit 143 or 129 (Ctrl-C: 130, by `guarded`)
        view.finish()
        print_error(f"interrupted by {stop.signal_name}: the clips written so far are kept; the same command "
                    f"again skips them")
        raise typer.Exit(stop.exit_code) from None
    finally:
        view.finish()
    print_extraction(result, settings.flag_below)
    raise typer.Exit(0 if result.ok else 1)


SOURCES = inspect.Parameter(
    "sources",
    inspect.Parameter.KEYWORD_ONLY,
    default=typer.Argument(..., metavar="SRC...", help="Landmark files, or folders of them.", show_default=False),
    annotation=list[Path],
)


@app.command("import")
@settings_command(ImportSettings, fields=[n for n in ImportSettings.model_fields if n != "sources"],
                  extra=[SOURCES, CONFIG])
@guarded
def import_(flags: dict, sources: list[Path], config: Optional[Path]) -> None:
    """Other tools' landmark files (GISLR parquet, .pose, OpenPose JSON, MediaPipe npy) as clips `slr train` reads."""
    settings = resolve_settings(ImportSettings, {**flags, "sources": sources}, config)
    from slr.importers.run import run_import
    from slr.ui.import_view import ImportProgress, print_import, print_import_json

    view = ImportProgress(quiet=settings.json_output)
    try:
        result = run_import(settings, view)
    finally:
        view.finish()
    (print_import_json if settings.json_output else print_import)(result)
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        # Class names and paths may be any Unicode; a terminal or pipe set to ASCII
        # (PYTHONIOENCODING=ascii, LANG=C) must still get the output, escaped, not a crash.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        app(prog_name="slr")
    finally:
        flush_stdout_or_exit()


if __name__ == "__main__":
    main()
