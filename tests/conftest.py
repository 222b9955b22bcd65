"""Shared fixtures. Session-scoped directories are shared by many tests: copy before changing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from slr.data.synthetic import write_synthetic_dataset

#: The real asl-words clips of the shared data folder (see its README); tests that need them skip
#: without them. The checkout sits beside shared/ (here and in CI: shared/data/asl-words next to
#: the repository folder), so look there unless SLR_ASL_WORDS says otherwise.
ASL_WORDS = Path(os.environ.get("SLR_ASL_WORDS", Path(__file__).resolve().parents[2] / "shared" / "data" / "asl-words"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic clips (5 glosses, 2 categories): `X` [T, 156], `X2048` [T, 64], labels.csv.

    Shared by the whole session: treat it as read-only (copy it with shutil.copytree to change it).
    """
    directory = tmp_path_factory.mktemp("synthetic") / "clips"
    write_synthetic_dataset(directory, 40, num_gloss=5, num_cat=2, feature_dim=64, min_frames=6, max_frames=20)
    return directory


@pytest.fixture(scope="session")
def asl_words_dir() -> Path:
    """The real asl-words clips (train/ and val/), or a skip where they are not present."""
    if not (ASL_WORDS / "train" / "labels.csv").is_file():
        pytest.skip(f"real clips not found at {ASL_WORDS} (set SLR_ASL_WORDS)")
    return ASL_WORDS


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine two OpenMP threads
    wait on each other for whole scheduler slices (a 1 s test became 40 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """72 training and 24 validation synthetic clips (train/, val/), 4 glosses in 2 categories, `X` [T, 32].

    The training engine's tests (and those that import them) share it: read-only, like synthetic_dir.
    """
    root = tmp_path_factory.mktemp("train-data")
    options = dict(num_gloss=4, num_cat=2, feature_dim=32, min_frames=6, max_frames=18)
    write_synthetic_dataset(root / "train", 72, seed=1, **options)
    write_synthetic_dataset(root / "val", 24, seed=2, **options)
    return root


# --- reference runs: trained once per session by `slr train`, read by every test that only needs
# "a real checkpoint and its log" (evaluate, compare, the log format). ------------------------------

#: One configuration per model: the synthetic_dir clips for training and validation, small layers.
REFERENCE_RUNS = {
    "transformer": ["--keypoints-train", "{clips}", "--keypoints-val", "{clips}",
                    "--d-model", "16", "--num-heads", "2", "--num-layers", "1", "--ff-dim", "32"],
    "iv3_gru": ["--features-train", "{clips}", "--features-val", "{clips}", "--gru-hidden", "8", "--gru-layers", "1"],
}
REFERENCE_COMMON = ["--num-gloss", "5", "--num-cat", "2", "--epochs", "2", "--lr", "0.003", "--batch-size", "8",
                    "--no-plots"]


@dataclass(frozen=True)
class ReferenceRun:
    """A finished run's folder, as `slr train` left it."""

    model: str
    dir: Path
    model_class: str

    @property
    def best(self) -> Path:
        return self.dir / f"{self.model_class}_best.pt"

    @property
    def last(self) -> Path:
        return self.dir / f"{self.model_class}_last.pt"

    @property
    def log_csv(self) -> Path:
        return self.dir / "log.csv"


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


@pytest.fixture(scope="session")
def reference_runs(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """{"transformer": ReferenceRun, "iv3_gru": ReferenceRun}, each trained for 2 epochs on synthetic_dir
    by the real command line (in this process). Read-only: a test that writes into a run folder (an
    output beside the checkpoint, an edited file) takes `reference_run_copy` instead. At the end of
    the session a changed file in them fails the session, naming it."""
    from typer.testing import CliRunner

    from slr.cli import app
    from slr.models.registry import model_spec

    root = tmp_path_factory.mktemp("reference-runs")
    runs = {}
    for model, flags in REFERENCE_RUNS.items():
        args = ["train", model, *(f.format(clips=synthetic_dir) for f in flags), *REFERENCE_COMMON,
                "--output-dir", str(root / model)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs[model] = ReferenceRun(model, root / model, model_spec(model).class_name)
    before = {model: _snapshot(run.dir) for model, run in runs.items()}
    yield runs
    changed = {model: sorted(set(_snapshot(run.dir).items()) ^ set(before[model].items()))
               for model, run in runs.items()}
    changed = {model: sorted({name for name, _ in c}) for model, c in changed.items() if c}
    assert not changed, f"tests wrote into the shared reference runs (use reference_run_copy): {changed}"


@pytest.fixture
def reference_run_copy(reference_runs, tmp_path: Path):
    """`reference_run_copy("transformer")`: a copy of that reference run in this test's tmp_path, to change."""

    def copy(model: str) -> ReferenceRun:
        run = reference_runs[model]
        target = tmp_path / f"{model}-run"
        shutil.copytree(run.dir, target)
        return ReferenceRun(run.model, target, run.model_class)

    return copy
