"""`slr export`: a checkpoint's model as a TorchScript or ONNX file that runs without slr.

The exported model takes `x` float32 `[B, T, D]` (clips prepared as `slr predict` prepares them:
`slr.data.prepare.prepare_clip(x, metadata)` with the file's metadata; padded with zeros) and `mask`
bool `[B, T]` (True on real frames), any B and T, and returns
`(gloss_logits [B, num_gloss], cat_logits [B, num_cat])`. An ensemble of checkpoints
(slr.analysis.ensemble) is one graph whose outputs are the log of its members' mean
probabilities: their softmax is that mean.

Every export is checked before it is kept: the file is loaded back (`torch.jit.load` /
onnxruntime) and run on sample clips of several lengths and on a padded batch; the logits must
match the PyTorch model's within the tolerance. The file is written under a temporary name beside
the output and only renamed into place once the check passes, so a failed export leaves nothing.

ONNX: torch 2.x has two exporters. The dynamo one (`torch.export`, needs onnxscript) handles the
transformer; the older TorchScript-based one handles the GRU's packed sequences. Each model tries
the one that works for it first and falls back to the other; whichever passes the check is kept.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from slr.atomic import raise_if_disk_full, temporary_name
from slr.engine.run_folder import EXPORT_SUFFIXES
from slr.errors import ConfigError, SlrError, setting
from slr.models.registry import model_spec
from slr.settings import ExportSettings

SUFFIXES = EXPORT_SUFFIXES  # named with the run's other files: a new run moves exports to earlier/
INPUT_NAMES = ["x", "mask"]
OUTPUT_NAMES = ["gloss_logits", "cat_logits"]
SAMPLE_LENGTHS = (1, 8, 20, 57)
BATCH_LENGTHS = (57, 20, 8, 3)


class ExportFailed(SlrError):
    """The exported file could not be made or does not reproduce the PyTorch model."""

    exit_code = 1


@dataclass
class ExportResult:
    path: Path
    format: str
    exporter: str
    max_abs_diff: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "exporter": self.exporter,
            "max_abs_diff": self.max_abs_diff,
            "checks": self.checks,
        }


def default_output(checkpoint: Path, fmt: str, ensemble: Sequence[Path] = ()) -> Path:
    """`runs/SignTransformer_best.pt` -> `runs/SignTransformer_best.ts.pt` / `.onnx`; an ensemble of 5
    fold runs' checkpoints -> `<the folder holding them>/SignTransformer_best_ensemble5.ts.pt`."""
    checkpoint = Path(checkpoint)
    if not ensemble:
        return checkpoint.with_name(checkpoint.stem + SUFFIXES[fmt])
    from slr.analysis.ensemble import common_folder

    return common_folder([checkpoint, *ensemble]) / f"{checkpoint.stem}_ensemble{1 + len(ensemble)}{SUFFIXES[fmt]}"


def sample_inputs(input_dim: int, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, x [B, T, D] float32, mask [B, T] bool): single clips of several lengths and a padded batch."""
    rng = np.random.default_rng(seed)
    samples = []
    for length in SAMPLE_LENGTHS:
        x = rng.standard_normal((1, length, input_dim)).astype(np.float32)
        samples.append((f"T={length}", x, np.ones((1, length), dtype=bool)))
    steps = max(BATCH_LENGTHS)
    lengths = np.array(BATCH_LENGTHS)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    x = rng.standard_normal((len(lengths), steps, input_dim)).astype(np.float32) * mask[..., None]
    samples.append((f"padded batch of {len(lengths)} (T={', '.join(map(str, BATCH_LENGTHS))})", x, mask))
    return samples


def _wrapper(model):
    import torch

    class ExportWrapper(torch.nn.Module):
        """forward(x [B, T, D] float32, mask [B, T] bool) -> (gloss_logits, cat_logits)."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            gloss, cat = self.inner(x, mask)
            return gloss, cat

    return ExportWrapper(model).eval()


@contextlib.contextmanager
def _quiet():
    """The exporters print progress, warnings and graph dumps, from Python and from C++ (straight
    to file descriptors 1 and 2); none of it is for the user, whose answer is the check that follows."""
    sink = io.StringIO()
    saved: list[tuple[int, int]] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        with open(os.devnull, "w") as devnull:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull.fileno(), fd)
    except OSError:  # no real descriptors (embedded interpreters): Python-level silence only
        pass
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield sink
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def metadata(loaded) -> dict[str, Any]:
    """What a user of the exported file needs to feed it and read its outputs."""
    from slr.analysis.classes import from_checkpoint
    from slr.analysis.ensemble import members_of

    names = from_checkpoint(loaded.state)
    prep = loaded.preprocessing
    members = members_of(loaded)
    outputs = {"gloss_logits": "[batch, num_gloss]", "cat_logits": "[batch, num_cat]"}
    if len(members) > 1:  # the outputs are log-probabilities: their softmax is the members' mean
        outputs = {name: f"{shape}: log of the mean of the {len(members)} members' probabilities (softmax of it "
                         "is that mean)" for name, shape in outputs.items()}
    return {
        "slr_checkpoint": str(loaded.path),
        **({"ensemble": [str(p) for p in members]} if len(members) > 1 else {}),
        "model": loaded.name,
        "model_class": loaded.model_class,
        "input_kind": loaded.input_kind,
        "npz_key": loaded.key,
        "npz_fallback_key": loaded.fallback_key,
        "input_dim": loaded.input_dim,
        "num_gloss": loaded.num_gloss,
        "num_cat": loaded.num_cat,
        # kept for readers of earlier exports; "preprocessing" is the whole pipeline, resolved and in order
        "normalize": prep["normalize"],
        "keypoint_layout": prep["keypoint_layout"],  # declared by a layout file, else None
        "max_frames": prep["max_frames"],
        "long_clips": prep["long_clips"],
        "preprocessing": prep,
        "prepare_with": "slr.data.prepare.prepare_clip(x, metadata)",
        "inputs": {"x": "float32 [batch, time, input_dim]", "mask": "bool [batch, time], True = real frame"},
        "outputs": outputs,
        "gloss_names": {str(k): v for k, v in sorted(names.gloss.items())},
        "cat_names": {str(k): v for k, v in sorted(names.cat.items())},
    }


# --- writers: model -> file -------------------------------------------------------------------


def _write_torchscript(wrapper, example, path: Path, meta: dict[str, Any]) -> None:
    import torch

    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        # Into memory first: torch.jit.save to a path on a full disk throws from a C++ destructor,
        # which aborts the whole process (status 134, no message) and leaves an empty file.
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"slr.json": json.dumps(meta, ensure_ascii=False)})
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def _write_onnx_dynamo(wrapper, example, path: Path) -> None:
    import torch

    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    with torch.no_grad(), _quiet():
        # torch.export in non-strict mode directly: torch.onnx.export would try strict mode first.
        program = torch.export.export(
            wrapper, example, dynamic_shapes={"x": {0: batch, 1: time}, "mask": {0: batch, 1: time}}, strict=False
        )
        onnx_program = torch.onnx.export(program, dynamo=True, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES)
        onnx_program.save(str(path), external_data=False)


def _write_onnx_torchscript_based(wrapper, example, path: Path) -> None:
    import torch

    axes = {"x": {0: "batch", 1: "time"}, "mask": {0: "batch", 1: "time"}}
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            dynamo=False,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes={**axes, "gloss_logits": {0: "batch"}, "cat_logits": {0: "batch"}},
            opset_version=17,
        )


def _finish_onnx(path: Path, meta: dict[str, Any]) -> None:
    """Name the dynamic axes `batch` and `time` (the dynamo exporter calls them s0, s1, ...) and
    store the metadata."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    x = next(i for i in graph.input if i.name == "x")
    dims = x.type.tensor_type.shape.dim
    rename = {dims[0].dim_param: "batch", dims[1].dim_param: "time"}
    rename.pop("", None)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]
    entry = model.metadata_props.add()
    entry.key, entry.value = "slr", json.dumps(meta, ensure_ascii=False)
    onnx.save(model, str(path))


# --- runners: file -> function(x, mask) -> outputs --------------------------------------------


def _torchscript_runner(path: Path) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    import torch

    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")

    def run(x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in module(torch.from_numpy(x), torch.from_numpy(mask))]

    return run


def _onnx_runner(path: Path) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        return session.run(OUTPUT_NAMES, {"x": x, "mask": mask})

    return run


def check_export(
    wrapper, run: Callable[[np.ndarray, np.ndarray], list[np.ndarray]], input_dim: int, tolerance: float
) -> tuple[float, list[dict[str, Any]]]:
    """Largest |exported - PyTorch| over the sample inputs, and one record per sample."""
    import torch

    checks = []
    worst = 0.0
    for label, x, mask in sample_inputs(input_dim):
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(torch.from_numpy(x), torch.from_numpy(mask))]
        try:
            got = run(x, mask)
        except Exception as exc:  # the runtime refused this shape: the export is not usable
            raise ExportFailed(f"the exported model fails on {label}: {_first_line(exc)}") from None
        diff = 0.0
        for name, want, have in zip(OUTPUT_NAMES, expected, got):
            if np.shape(have) != want.shape:
                raise ExportFailed(
                    f"the exported model gives {name} of shape {list(np.shape(have))} on {label}, "
                    f"expected {list(want.shape)}"
                )
            diff = max(diff, float(np.max(np.abs(np.asarray(have, dtype=np.float64) - want))))
        if not np.isfinite(diff):
            diff = float("inf")
        checks.append({"input": label, "max_abs_diff": diff, "ok": diff <= tolerance})
        worst = max(worst, diff)
    return worst, checks


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


#: What ONNX export needs, and why: all three come with the `export` extra of pyproject.toml.
ONNX_PACKAGES = {
    "onnx": "to write the file",
    "onnxscript": "torch.onnx's exporter",
    "onnxruntime": "to check the exported model",
}
ONNX_INSTALL = 'pip install -e ".[export]"'


def check_onnx_packages() -> None:
    """Name every missing package at once, and the extra that brings them all: installing them one
    error at a time (onnx, then onnxruntime, then onnxscript) took three tries."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        needs = ", ".join(f"'{name}' ({ONNX_PACKAGES[name]})" for name in missing)
        raise ConfigError(
            f"{setting('format', 'onnx')} needs {needs}: install them with {ONNX_INSTALL} in slr's folder "
            f"(or pip install {' '.join(ONNX_PACKAGES)})"
        )


# --- what --output may replace -----------------------------------------------------------------

_FORMAT_NAMES = {"torchscript": "a TorchScript export", "onnx": "an ONNX model"}


def check_output(output: Path, checkpoint: Path, fmt: str, ensemble: Sequence[Path] = ()) -> None:
    """Refuse an --output that would destroy something: a checkpoint being exported, or an existing
    file other than an earlier export of the same format (a training checkpoint, a log, anything)."""
    from slr.output_paths import check_output_file, same_file

    check_output_file(output, setting("output"))
    if any(same_file(output, c) for c in (checkpoint, *ensemble)):
        which = "one of the checkpoints" if ensemble else "the checkpoint"
        raise ConfigError(f"{setting('output')} is {which} being exported; give another file name", output)
    if not (output.exists() or output.is_symlink()):
        return
    found = _export_format(output)
    if found != fmt:
        what = _FORMAT_NAMES[found] if found else ("a PyTorch checkpoint" if _is_torch_save(output) else "another file")
        raise ConfigError(
            f"{setting('output')} exists and is {what}, not {_FORMAT_NAMES[fmt]}; only an earlier {fmt} export is "
            "replaced: give another file name, or remove the file first",
            output,
        )


def _export_format(path: Path) -> str | None:
    """"torchscript" or "onnx" when ``path`` holds such a model, else None."""
    members = _zip_members(path)
    if members is None:
        return "onnx" if _is_onnx(path) else None
    inner = [name.split("/", 1)[-1] for name in members]  # below the archive's top folder
    # TorchScript archives hold the model's code; torch.save files (checkpoints) do not.
    return "torchscript" if "constants.pkl" in inner and any(m.startswith("code/") for m in inner) else None


def _zip_members(path: Path) -> list[str] | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _is_torch_save(path: Path) -> bool:
    return any(name.split("/", 1)[-1] == "data.pkl" for name in _zip_members(path) or [])


def _is_onnx(path: Path) -> bool:
    """An ONNX ModelProto with a graph. Exporters write ir_version (field 1, varint: byte 0x08) first,
    which rules out most other files before parsing them."""
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"\x08":
                return False
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not installed, unreadable, or not a protobuf of this type: not an ONNX model
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def export_model(settings: ExportSettings) -> ExportResult:
    """Export, check against PyTorch, and move into place; `ExportFailed` (exit 1) leaves no file."""
    import torch

    from slr.analysis.ensemble import load_models

    fmt = settings.format
    if fmt == "onnx":
        check_onnx_packages()
    output = Path(settings.output) if settings.output else default_output(settings.checkpoint, fmt, settings.ensemble)
    check_output(output, Path(settings.checkpoint), fmt, settings.ensemble)
    # several checkpoints: one graph averaging their probabilities, or refused naming what differs
    loaded = load_models(settings.checkpoint, settings.ensemble, "cpu")
    output.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _wrapper(loaded.model)
    meta = metadata(loaded)
    steps = 16
    example = (torch.zeros(2, steps, loaded.input_dim), torch.ones(2, steps, dtype=torch.bool))
    example[0].normal_(generator=torch.Generator().manual_seed(1))

    if fmt == "torchscript":
        attempts = [("torch.jit.trace", lambda p: _write_torchscript(wrapper, example, p, meta), _torchscript_runner)]
    else:
        writers = {
            "dynamo": lambda p: (_write_onnx_dynamo(wrapper, example, p), _finish_onnx(p, meta)),
            "torchscript-based": lambda p: (_write_onnx_torchscript_based(wrapper, example, p), _finish_onnx(p, meta)),
        }
        order = model_spec(loaded.name).onnx_exporters  # the preferred first; the other when it fails
        attempts = [(f"torch.onnx.export ({name})", writers[name], _onnx_runner) for name in order]

    failures = []
    for exporter, write, runner in attempts:
        tmp = temporary_name(output, "".join(output.suffixes) or ".bin")
        try:
            try:
                write(tmp)
            except Exception as exc:
                raise_if_disk_full(exc, output)  # no other exporter would fit either: say so, by name
                failures.append(f"{exporter}: export failed ({_first_line(exc)})")
                continue
            try:
                worst, checks = check_export(wrapper, runner(tmp), loaded.input_dim, settings.tolerance)
            except ExportFailed as exc:
                failures.append(f"{exporter}: {exc}")
                continue
            except Exception as exc:
                failures.append(f"{exporter}: the file cannot be loaded back ({_first_line(exc)})")
                continue
            if worst > settings.tolerance:
                bad = next(c for c in checks if not c["ok"])
                failures.append(
                    f"{exporter}: outputs differ from PyTorch by up to {worst:.3g} (tolerance {settings.tolerance:g}); "
                    f"first on {bad['input']}"
                )
                continue
            try:
                os.replace(tmp, output)
            except OSError as exc:
                raise_if_disk_full(exc, output)
                raise
            return ExportResult(output, fmt, exporter, worst, checks, notes=failures)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    raise ExportFailed("; ".join(failures) + f"; nothing was written to {output}")


def run_export(settings: ExportSettings) -> ExportResult:
    """`slr export`: the checked export, in place; the caller shows the result."""
    return export_model(settings)
