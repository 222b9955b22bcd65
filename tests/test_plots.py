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
