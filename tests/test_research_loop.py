"""What a long research run needs around the training loop: plain logs, threads, memory, TensorBoard."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from slr.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(d_model=16, num_heads=2, num_layers=1, ff_dim=32, gru_hidden=8, gru_layers=1)


def settings(clips: Path, out: Path, **overrides) -> TrainSettings:
    values = dict(model="transformer", keypoints_train=clips / "train", keypoints_val=clips / "val",
                  features_train=clips / "train", features_val=clips / "val", num_gloss=4, num_cat=2,
                  epochs=2, batch_size=16, lr=1e-3, output_dir=out, plots=False, **TINY)
    values.update(overrides)
    return TrainSettings(**values)


# --- the log CSV ---------------------------------------------------------------------------


def test_log_csv_lines_end_with_a_bare_newline(reference_runs):
    data = reference_runs["transformer"].log_csv.read_bytes()  # 2 epochs of `slr train`
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


# --- notices before training ---------------------------------------------------------------


def train_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`slr train` in a child process whose output is a pipe, as in a log file or CI."""
    import os

    return subprocess.run([sys.executable, "-m", "slr", "train", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


def tiny_flags(clips: Path, out: Path, *extra: str) -> list[str]:
    flags = ["transformer", "--keypoints-train", str(clips / "train"), "--keypoints-val", str(clips / "val"),
             "--output-dir", str(out), "--no-plots", "--epochs", "1", "--batch-size", "16"]
    for name, value in TINY.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags + list(extra)


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("notice:")]


@pytest.mark.slow
def test_class_counts_larger_than_the_labels_are_said_in_words(clips, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(clips, data)
    (data / "train" / "clip_9999_stray.npz").write_bytes(next((data / "train").glob("*.npz")).read_bytes())
    done = train_cli(*tiny_flags(data, tmp_path / "run", "--num-gloss", "105", "--num-cat", "10"))
    assert done.returncode == 0, done.stderr
    said = notices(done.stderr)
    # The likely mistake first, in words, with the flags that fix it; not "N warning(s)".
    assert "the labels use 4 glosses (ids 0–3) and 2 categories (ids 0–1)" in said[0], said
    assert "--num-gloss is 105 and --num-cat 10 (the guide's FSL-105 values" in said[0], said
    assert "Pass --num-gloss 4 --num-cat 2" in said[0], said
    # The other warning is shown by its text; the empty classes the counts explain are not repeated.
    assert len(said) == 2 and "clip_9999_stray.npz: no row in labels.csv" in said[1], said
    assert "warning(s)" not in done.stderr and "have no clips" not in done.stderr


@pytest.mark.slow
def test_class_counts_that_fit_the_labels_say_nothing(clips, tmp_path):
    done = train_cli(*tiny_flags(clips, tmp_path / "run", "--num-gloss", "4", "--num-cat", "2"))
    assert done.returncode == 0, done.stderr
    assert notices(done.stderr) == [], done.stderr


def test_only_the_count_that_is_too_large_is_named():
    from slr.data.notices import CheckedSplit, class_count_notice

    split = CheckedSplit(Path("train"), {"gloss": {0: 3, 2: 1, 5: 2}, "cat": {0: 1, 1: 5}}, [], "slr validate train")
    text = class_count_notice([split], num_gloss=30, num_cat=2)
    assert text.startswith("the labels use 3 glosses (ids 0–5, 3 of them without clips), but {{num_gloss}} is 30:")
    assert "{{num_cat}}" not in text and "FSL-105" not in text
    assert class_count_notice([split], num_gloss=6, num_cat=2) is None


# --- CPU threads ---------------------------------------------------------------------------


def test_auto_threads_count_only_free_cores():
    from slr.engine.threads import auto_threads

    assert auto_threads(2, 6.5, 2)[0] == 1  # the shared 2-core machine the default was 4x slower on
    assert auto_threads(2, 0.2, 2)[0] == 2
    assert auto_threads(16, 3.0, 16)[0] == 13
    assert auto_threads(16, 0.0, 8)[0] == 8  # never above torch's own default
    assert auto_threads(4, None, 4)[0] == 4
    assert auto_threads(1, 0.0, 1)[0] == 1


def test_the_setting_wins_then_the_environment_then_the_rule():
    from slr.engine.threads import choose_threads

    assert choose_threads(3, cores=2, load=9.0, environ={"OMP_NUM_THREADS": "1"}).method == "setting"
    env = choose_threads(None, cores=2, load=0.0, environ={"OMP_NUM_THREADS": "1"})
    assert (env.threads, env.method) == (1, "environment") and "OMP_NUM_THREADS=1" in env.reason
    auto = choose_threads(None, cores=2, load=5.0, environ={"OMP_NUM_THREADS": "lots"}, measure=False)
    assert (auto.threads, auto.method) == (1, "auto") and "load 5.0" in auto.reason


@pytest.mark.slow
def test_threads_are_applied_and_shown_in_the_run_header_and_hwinfo(clips, tmp_path):
    import json
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", "import sys, torch; sys.argv = ['slr', *sys.argv[1:]]\n"
                           "from slr.cli import app\ntry: app()\nexcept SystemExit: pass\n"
                           "print('torch threads', torch.get_num_threads())", "train",
                           *tiny_flags(clips, tmp_path / "run", "--threads", "1")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "; 1 CPU thread(s) (as given)" in done.stdout and "torch threads 1" in done.stdout, done.stdout
    runtime = json.loads((tmp_path / "run" / "settings.json").read_text())["runtime"]
    assert runtime["threads"]["threads"] == 1 and runtime["threads"]["method"] == "setting"

    report = subprocess.run([sys.executable, "-m", "slr", "hwinfo", "--json"], capture_output=True, text=True,
                            timeout=120, env=env, cwd=ROOT)
    threads = json.loads(report.stdout)["threads"]
    assert threads["method"] == "auto" and 1 <= threads["threads"] <= threads["usable_cores"]
    assert threads["reason"].startswith("auto: ")


# --- what a run shows ----------------------------------------------------------------------


@pytest.mark.slow
def test_output_to_a_pipe_gets_a_line_inside_long_epochs(clips, tmp_path):
    done = train_cli(*tiny_flags(clips, tmp_path / "run", "--batch-size", "4", "--epochs", "2",
                                 "--log-every-s", "0.001"))
    assert done.returncode == 0, done.stderr
    beats = [line for line in done.stdout.splitlines() if " step " in line]
    assert len(beats) >= 4, done.stdout  # 18 steps per epoch (72 clips)
    for epoch in (1, 2):
        mine = [line for line in beats if line.startswith(f"epoch {epoch}/2  step ")]
        assert mine and all("/18  " in line and "samples/s" in line and "loss " in line for line in mine), beats
    quiet = train_cli(*tiny_flags(clips, tmp_path / "quiet", "--batch-size", "4", "--log-every-s", "0"))
    assert quiet.returncode == 0 and " step " not in quiet.stdout, quiet.stdout


def test_the_epoch_table_on_a_terminal_prints_its_header_once(one_thread):
    import io

    from rich.console import Console

    from slr.engine.hardware import MemorySnapshot
    from slr.ui.training_view import TrainingView

    view = TrainingView(live=True)
    view.console = Console(file=io.StringIO(), force_terminal=True, color_system=None, width=120)
    view.start(3, 0)
    row = dict(train_loss=1.5, val_loss=1.25, val_gloss_acc=0.5, val_cat_acc=0.75, lr=1e-4, samples_per_s=1234.0,
               epoch_time=2.5, best=0.5)
    for epoch in (1, 2, 3):
        view.epoch_start(epoch, 3, 10, 0)
        view.epoch_end({**row, "epoch": epoch}, 3, epoch == 1, MemorySnapshot("cpu", rss=2**30))
    view.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", view.console.file.getvalue())  # cursor moves of the live bars
    assert text.count("train_loss") == 1, text
    rows = [line for line in text.splitlines() if "1.5000" in line]
    assert len(rows) == 3 and len({line.index("1.2500") for line in rows}) == 1, rows  # the columns line up


# --- TensorBoard ---------------------------------------------------------------------------


def read_events(directory: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_the_log_rows_once_each_also_after_resumes(clips, tmp_path, one_thread):
    import csv
    import shutil

    pytest.importorskip("tensorboard")
    from slr.engine.run import resume, train
    from slr.settings import ResumeSettings

    out = tmp_path / "run"
    train(settings(clips, out, epochs=1))
    after_one = tmp_path / "after-one.pt"
    shutil.copy(out / "SignTransformer_last.pt", after_one)
    resume(ResumeSettings(checkpoint=out / "SignTransformer_last.pt", overrides={"epochs": 3}))
    # Again from after epoch 1, into the same folder: epochs 2 and 3 are logged a second time.
    resume(ResumeSettings(checkpoint=after_one, overrides={"epochs": 3, "output_dir": str(out)}))

    events = read_events(out / "tensorboard")
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for column in ("train_loss", "val_loss", "val_gloss_acc", "lr", "samples_per_s"):
        assert [step for step, _ in events[column]] == [1, 2, 3], events[column]
        assert [v for _, v in events[column]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)

    # A new run in the same folder: the earlier run's events move aside, and show as a run of their own.
    train(settings(clips, out, epochs=1))
    assert [step for step, _ in read_events(out / "tensorboard")["train_loss"]] == [1]
    earlier = list((out / "tensorboard" / "earlier").iterdir())
    assert len(earlier) == 1 and [s for s, _ in read_events(earlier[0])["train_loss"]] == [1, 2, 3]


def test_tensorboard_can_be_turned_off_or_moved(clips, tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    from slr.engine.run import train

    train(settings(clips, tmp_path / "off", epochs=1, tensorboard=False))
    assert not (tmp_path / "off" / "tensorboard").exists()
    train(settings(clips, tmp_path / "moved", epochs=1, tensorboard_dir=tmp_path / "tb"))
    assert [s for s, _ in read_events(tmp_path / "tb")["val_loss"]] == [1]


@pytest.mark.slow
def test_without_the_package_runs_log_csv_only_and_an_asked_folder_is_refused(clips, tmp_path):
    block = "import sys\nsys.modules['tensorboard'] = None\nsys.argv = ['slr', *sys.argv[1:]]\nfrom slr.cli import main\nmain()"
    run = lambda *extra: subprocess.run([sys.executable, "-c", block, "train", *tiny_flags(clips, *extra)],
                                        capture_output=True, text=True, timeout=300, cwd=ROOT)
    plain = run(tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain" / "log.csv").is_file() and not (tmp_path / "plain" / "tensorboard").exists()
    asked = run(tmp_path / "asked", "--tensorboard-dir", str(tmp_path / "tb"))
    assert asked.returncode == 2 and 'pip install -e ".[tensorboard]"' in asked.stderr, asked.stderr
    assert "--tensorboard-dir" in asked.stderr and not (tmp_path / "asked" / "log.csv").exists()


# --- length buckets ------------------------------------------------------------------------


def test_buckets_cover_every_length_and_leave_equal_lengths_unpadded():
    from slr.data.buckets import bucket_length, length_buckets

    assert length_buckets([20] * 50, 8) == [20]  # asl-words: every clip 20 frames, no padding
    lengths = list(range(20, 181, 8))  # up to 180
    buckets = length_buckets(lengths, 8, stretch=0.25)
    assert len(buckets) <= 16 and buckets[-1] == 225  # 180 frames at 0.8x speed
    for n in range(1, 226):
        b = bucket_length(n, buckets)
        assert b >= n and (n > buckets[-1] or b in buckets)
        assert n <= 180 or b <= n * 1.06  # the top range in 5% steps: little padding where batches land
    assert length_buckets(lengths, 8, stretch=0.25, max_frames=64)[-1] == 64
    assert length_buckets(lengths, 0) == []


@pytest.mark.parametrize("model_name", ["transformer", "iv3_gru"])
def test_a_batch_padded_to_its_bucket_gives_the_same_outputs(model_name, one_thread):
    import numpy as np
    import torch

    from slr.data.dataset import ClipDataset, collate_clips
    from slr.models.registry import build_model

    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((n, 12)).astype(np.float32) for n in (7, 19, 23, 11)]
    data = ClipDataset.from_arrays(clips, [0, 1, 2, 0], [0, 1, 0, 1])
    samples = [data[i] for i in range(len(clips))]
    plain, bucketed = collate_clips(samples), collate_clips(samples, [16, 40, 64])
    assert plain.x.shape[1] == 23 and bucketed.x.shape[1] == 40
    assert torch.equal(bucketed.x[:, :23], plain.x) and not bucketed.x[:, 23:].any()
    assert torch.equal(bucketed.mask.sum(1), plain.lengths) and torch.equal(bucketed.lengths, plain.lengths)
    torch.manual_seed(0)
    model = build_model(model_name, TrainSettings(model=model_name, **TINY), 12, 3, 2).eval()
    with torch.no_grad():
        for a, b in zip(model(plain.x, plain.mask), model(bucketed.x, bucketed.mask)):
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_training_batches_are_padded_to_the_buckets(clips, tmp_path, one_thread):
    from slr.engine.data_setup import build_data
    from slr.engine.distributed import DistInfo
    import torch

    s = settings(clips, tmp_path / "run", speed_jitter=0.2, batch_size=8)
    data = build_data(s, DistInfo(), torch.device("cpu"))
    train, _ = data.loaders(s, DistInfo(), torch.device("cpu"), 0)
    train.sampler.set_epoch(1)
    data.train.set_epoch(1)
    shapes = {batch.x.shape[1] for batch in train}
    assert data.train.length_buckets and shapes <= set(data.train.length_buckets)
    off = settings(clips, tmp_path / "run", speed_jitter=0.2, batch_size=8, length_buckets=0)
    assert build_data(off, DistInfo(), torch.device("cpu")).train.length_buckets == []


# --- memory released after each epoch ------------------------------------------------------

TRIM_CHECK = """
import torch
from slr.engine.hardware import process_rss
from slr.engine.hardware import release_freed_memory
keep = []
for round in range(3):  # blocks of many sizes, every 50th kept: the freed rest is scattered
    sizes = torch.randint(30_000, 250_000, (400,), generator=torch.Generator().manual_seed(round))
    blocks = [torch.ones(int(n)) for n in sizes]
    keep += blocks[::50]
    del blocks
before = process_rss()
released = release_freed_memory()
print(released, before, process_rss())
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system():
    done = subprocess.run([sys.executable, "-c", TRIM_CHECK], capture_output=True, text=True, timeout=120, cwd=ROOT)
    released, before, after = done.stdout.split()
    if released != "True":
        pytest.skip("this C library has no malloc_trim")
    assert int(before) - int(after) > 64 * 2**20, (before, after)  # ~600 MB was freed, scattered
