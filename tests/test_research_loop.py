"""What a long research run needs around the training loop: plain logs, threads, memory, TensorBoard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slr.data.synthetic import write_synthetic_dataset
from slr.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, gru_hidden=8, gru_layers=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """48 training and 16 validation synthetic clips, 4 glosses in 2 categories."""
    root = tmp_path_factory.mktemp("loop-data")
    options = dict(num_gloss=4, num_cat=2, feature_dim=32, min_frames=6, max_frames=30)
    write_synthetic_dataset(root / "train", 48, seed=1, **options)
    write_synthetic_dataset(root / "val", 16, seed=2, **options)
    return root


def settings(clips: Path, out: Path, **overrides) -> TrainSettings:
    values = dict(model="transformer", keypoints_train=clips / "train", keypoints_val=clips / "val",
                  features_train=clips / "train", features_val=clips / "val", num_gloss=4, num_cat=2,
                  epochs=2, batch_size=16, lr=1e-3, output_dir=out, plots=False, **TINY)
    values.update(overrides)
    return TrainSettings(**values)


# --- the log CSV ---------------------------------------------------------------------------


def test_log_csv_lines_end_with_a_bare_newline(clips, tmp_path, one_thread):
    from slr.engine.run import run_training

    outcome = run_training(settings(clips, tmp_path / "run"))
    data = outcome.paths.log_csv.read_bytes()
    assert b"\r" not in data
    assert data.endswith(b"\n") and data.count(b"\n") == 1 + 2  # the header and one row per epoch


# --- what the repository tells its users ---------------------------------------------------


def test_docs_examples_and_tests_name_no_folder_of_this_machine():
    tool = ROOT.parent / "shared" / "tools" / "machine-paths"
    if not tool.is_file():
        pytest.skip(f"{tool} is not here")
    found = subprocess.run([sys.executable, str(tool), "README.md", "docs", "examples", "benchmarks", "tests", "slr"],
                           cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 0, found.stdout
