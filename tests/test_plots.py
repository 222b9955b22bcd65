"""`slr plot`: training curves from a log CSV as a PNG, and clear errors for logs it cannot read."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
from typer.testing import CliRunner

from slr.cli import app

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER = (
    "epoch,train_loss,val_loss,val_gloss_acc,val_cat_acc,lr,epoch_time,gpu_memory_allocated,"
    "gpu_memory_reserved,train_gloss_acc,train_cat_acc,samples_per_s,val_time,gpu_memory_peak,rss\n"
)


def write_log(path: Path, epochs: int = 4) -> Path:
    rows = [
        f"{e},{2.0 / e:.4f},{2.2 / e:.4f},{0.2 * e:.2f},{0.2 + 0.15 * e:.2f},0.0001,1.5,0,0,{0.22 * e:.2f},0.5,30,0.1,0,700\n"
        for e in range(1, epochs + 1)
    ]
    path.write_text(HEADER + "".join(rows))
    return path


def assert_png(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    return image.shape


def test_plot_default_and_given_output(tmp_path):
    log = write_log(tmp_path / "log.csv")
    result = runner.invoke(app, ["plot", str(log)])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "log.png") in result.output
    height, width, _ = assert_png(tmp_path / "log.png")
    assert width > height > 200  # two panels side by side

    target = tmp_path / "figures" / "curves.png"
    result = runner.invoke(app, ["plot", str(log), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert_png(target)


def test_one_epoch_and_a_gap_still_plot(tmp_path):
    log = write_log(tmp_path / "one.csv", epochs=1)
    assert runner.invoke(app, ["plot", str(log)]).exit_code == 0
    assert_png(tmp_path / "one.png")
    gap = tmp_path / "gap.csv"
    gap.write_text(HEADER + "1,1.0,,0.1,0.2,0.001,1,0,0,0.1,0.2,1,1,0,1\n2,0.8,0.9,0.3,0.4,0.001,1,0,0,0.3,0.4,1,1,0,1\n")
    assert runner.invoke(app, ["plot", str(gap)]).exit_code == 0
    assert_png(tmp_path / "gap.png")


def test_bad_logs_are_one_message_and_exit_2(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    words = tmp_path / "words.csv"
    words.write_text(HEADER + "one,lots,x,y,z,0,0,0,0,0,0,0,0,0,0\n")
    (tmp_path / "run.csv").mkdir()
    cases = [
        (tmp_path / "run.csv", "is a directory, not a log CSV"),
        (tmp_path / "missing.csv", "log file not found"),
        (empty, "no epochs"),
        (other, "missing columns"),
        (words, "holds no numbers"),
    ]
    for path, needle in cases:
        result = runner.invoke(app, ["plot", str(path)])
        assert result.exit_code == 2, result.output
        assert needle in result.output and path.name in result.output and "Traceback" not in result.output
        assert not path.with_suffix(".png").exists()


def test_unsupported_formats_are_refused_before_anything_is_written(tmp_path):
    log = write_log(tmp_path / "log.csv")
    before = log.read_bytes()
    for name in ("curves.xyz", "log.csv", "SignTransformer_best.pt"):
        target = tmp_path / name
        result = runner.invoke(app, ["plot", str(log), "--output", str(target)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {target}:"), result.output
        assert ".png, .pdf, .svg" in result.output and "internal error" not in result.output
    assert log.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_the_path_reported_is_the_file_written(tmp_path):
    log = write_log(tmp_path / "log.csv")
    result = runner.invoke(app, ["plot", str(log), "--output", str(tmp_path / "noext")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"training curves: {tmp_path / 'noext.png'}"
    assert_png(tmp_path / "noext.png")
    assert not (tmp_path / "noext").exists()

    result = runner.invoke(app, ["plot", str(log), "--output", str(tmp_path / "curves.PDF")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.PDF").read_bytes()[:5] == b"%PDF-"

    (tmp_path / "figures").mkdir()
    result = runner.invoke(app, ["plot", str(log), "--output", str(tmp_path / "figures")])
    assert result.exit_code == 2 and "is a directory; give a file name" in result.output, result.output
    assert not (tmp_path / "figures.png").exists()


def test_epoch_ticks_are_whole_numbers(tmp_path):
    from slr.analysis.plots import draw_training_curves, read_log

    fig = draw_training_curves(read_log(write_log(tmp_path / "log.csv", epochs=3)))
    try:
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
            assert ticks == [1, 2, 3], ticks  # not 1.0, 1.25, 1.5, ...
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


# --- the confusion matrix at many classes -----------------------------------------------------


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_most_confused_classes_by_hand():
    from slr.analysis.confusion_plot import confusion_mass, most_confused_classes

    cm = [[5, 3, 0, 0], [1, 4, 0, 0], [0, 0, 6, 0], [2, 0, 0, 9]]
    # Off-diagonal row + column sums: class 0: 3 + 3, class 1: 1 + 3, class 2: 0, class 3: 2 + 0.
    assert confusion_mass(cm).tolist() == [6, 4, 0, 2]
    assert most_confused_classes(cm, 2) == [0, 1]
    assert most_confused_classes(cm, 10) == [0, 1, 3]  # a class without errors is not "confused"
    assert most_confused_classes([[3, 0], [0, 4]], 1) == [0]  # nothing confused: still something to draw


def test_a_105_class_matrix_reads_with_counts_and_top_n(tmp_path):
    import matplotlib.pyplot as plt
    import numpy as np

    from slr.analysis.confusion_plot import draw_confusion, most_confused_classes, plot_confusion

    rng = np.random.default_rng(0)
    n = 105
    cm = np.diag(rng.integers(5, 20, n))
    for i in range(n):
        for j in rng.integers(0, n, 3):
            cm[i, j] += int(rng.integers(0, 6))
    labels = [f"sign {i}" for i in range(n)]

    fig = draw_confusion(cm, labels, "gloss confusion")
    try:
        width, height = fig.get_size_inches() * 100
        assert min(width, height) / n >= 20  # at least 20 px per cell at the 100 dpi it is saved with
        assert sorted(_texts(fig)) == sorted(str(v) for v in cm[cm > 0])  # a count in every non-empty cell
    finally:
        plt.close(fig)

    fig = draw_confusion(cm, labels, "gloss confusion", top=12)
    try:
        order = most_confused_classes(cm, 12)
        assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [labels[i] for i in order]
        assert len(_texts(fig)) == int((cm[np.ix_(order, order)] > 0).sum())
        assert "12 most confused of 105 classes" in fig.axes[0].get_title()
    finally:
        plt.close(fig)
    shape = assert_png(plot_confusion(cm, labels, tmp_path / "top.png", "gloss confusion", top=12))
    assert 12 * 30 < shape[0] < 1400  # 30 px cells: small enough to see at once, big enough to read


# --- training curves: the run's name, the learning rate, the best epoch ----------------------


def test_curves_name_the_run_mark_the_best_epoch_and_show_the_lr(tmp_path):
    import json

    import matplotlib.pyplot as plt

    from slr.analysis.plots import best_epoch, draw_training_curves, read_log, run_title

    run = tmp_path / "tf-run"
    run.mkdir()
    rows = []
    for e in range(1, 9):
        acc = [0.1, 0.3, 0.5, 0.7, 0.6, 0.7, 0.65, 0.5][e - 1]  # best at 4; the tie at 6 is no improvement
        rows.append(f"{e},{2.0 / e:.4f},{2.2 / e:.4f},{acc},0.5,{1e-3 * 0.5 ** e},1,0,0,0.5,0.5,30,0.1,0,700\n")
    (run / "log.csv").write_text(HEADER + "".join(rows))
    assert run_title(run / "log.csv") == str(run)  # no settings.json: the folder alone
    (run / "settings.json").write_text(json.dumps({"settings": {"model": "transformer"}}))
    title = run_title(run / "log.csv")
    assert title == f"transformer, {run}"

    log = read_log(run / "log.csv")
    assert best_epoch(log) == (4, 0.7)
    fig = draw_training_curves(log, title)
    try:
        assert fig._suptitle.get_text() == title
        loss_ax, acc_ax, lr_ax = fig.axes
        assert lr_ax.get_title() == "learning rate" and lr_ax.get_yscale() == "log"  # 5e-4 .. 3.9e-6
        for ax in fig.axes:
            marks = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":"]
            assert marks == [4]
        assert any("best: epoch 4" in t.get_text() for t in acc_ax.get_legend().get_texts())
    finally:
        plt.close(fig)

    flat = tmp_path / "flat.csv"
    write_log(flat)  # a constant learning rate: linear axis
    fig = draw_training_curves(read_log(flat))
    try:
        assert fig.axes[2].get_yscale() == "linear"
    finally:
        plt.close(fig)

    result = runner.invoke(app, ["plot", str(run / "log.csv")])
    assert result.exit_code == 0, result.output
    height, width, _ = assert_png(run / "log.png")
    assert width > 2 * height  # three panels side by side
