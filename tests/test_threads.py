"""--threads auto: the start count from other processes' CPU time, the choice from timed windows of
training steps, and OMP_NUM_THREADS read safely (slr/engine/threads.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slr.engine import threads as th
from slr.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]


class FakeMachine:
    """A clock whose steps take `seconds[threads]`; the tuner sets the threads through `set`."""

    def __init__(self, seconds: dict[int, float], start: int):
        self.seconds, self.threads, self.now = dict(seconds), start, 0.0
        self.counts: list[int] = []  # the thread count of every step run

    def set(self, n: int) -> None:
        self.threads = n

    def clock(self) -> float:
        return self.now

    def run(self, tuner: th.ThreadTuner, steps: int, gap_every: int = 0) -> list[str]:
        notes = []
        for i in range(steps):
            if gap_every and i % gap_every == gap_every - 1:
                tuner.pause()
                self.now += 30.0  # a validation pass and checkpoint writes
            self.now += self.seconds[self.threads]
            self.counts.append(self.threads)
            note = tuner.step_done()
            if note:
                notes.append(note)
        return notes


def tuner_on(machine: FakeMachine, candidates=(1, 2), **options) -> th.ThreadTuner:
    return th.ThreadTuner(list(candidates), machine.threads, set_threads=machine.set, clock=machine.clock, **options)


@pytest.mark.parametrize("seconds, winner", [({1: 0.30, 2: 0.18}, 2), ({1: 0.20, 2: 0.80}, 1)])
def test_the_faster_count_is_kept_whichever_it_is(seconds, winner):
    machine = FakeMachine(seconds, start=1)
    tuner = tuner_on(machine)
    notes = machine.run(tuner, 60)
    assert tuner.chosen == winner and machine.threads == winner and not tuner.probing
    assert len(notes) == 1 and notes[0].startswith(f"threads: {winner} chosen by measurement")
    speeds = tuner.decisions[0]["steps_per_s"]
    assert speeds == {"1": pytest.approx(1 / seconds[1], abs=1e-3), "2": pytest.approx(1 / seconds[2], abs=1e-3)}


def test_fewer_threads_win_a_near_tie():
    machine = FakeMachine({1: 0.200, 2: 0.195}, start=2)
    tuner = tuner_on(machine)
    machine.run(tuner, 60)
    assert tuner.chosen == 1


def test_the_gaps_between_epochs_are_not_timed():
    # 2 threads are faster; long pauses (validation, checkpoints) fall inside the windows: they
    # may not count.
    machine = FakeMachine({1: 0.3, 2: 0.2}, start=1)
    tuner = tuner_on(machine)
    machine.run(tuner, 60, gap_every=4)
    assert tuner.chosen == 2
    assert tuner.decisions[0]["steps_per_s"] == {"1": pytest.approx(1 / 0.3, abs=1e-3), "2": pytest.approx(5.0, abs=1e-3)}


def test_a_sharp_fall_measures_again_and_follows_the_machine():
    machine = FakeMachine({1: 0.30, 2: 0.18}, start=2)
    tuner = tuner_on(machine)
    machine.run(tuner, 40)
    assert tuner.chosen == 2
    machine.seconds = {1: 0.35, 2: 1.5}  # another process took a core: 2 threads now wait on each other
    notes = machine.run(tuner, 80)
    assert any("timing 1, 2 thread(s) again" in n for n in notes), notes
    assert tuner.chosen == 1 and machine.threads == 1
    assert notes[-1].startswith("threads: 1 chosen (was 2) by measurement")


def test_a_slow_patch_shorter_than_the_patience_keeps_the_choice():
    machine = FakeMachine({1: 0.30, 2: 0.18}, start=2)
    tuner = tuner_on(machine)
    machine.run(tuner, 40)
    machine.seconds[2] = 1.0
    machine.run(tuner, 1)  # one slow step: one slow window
    machine.seconds[2] = 0.18
    notes = machine.run(tuner, 30)
    assert notes == [] and tuner.chosen == 2 and not tuner.probing


def test_the_choice_is_looked_at_again_after_recheck_s():
    machine = FakeMachine({1: 0.20, 2: 0.60}, start=1)
    tuner = tuner_on(machine, recheck_s=20.0)
    machine.run(tuner, 40)
    assert tuner.chosen == 1
    machine.seconds = {1: 0.20, 2: 0.10}  # the other process ended: 1 thread does not slow down, but 2 would be faster
    machine.run(tuner, 200)
    assert tuner.chosen == 2


def test_start_count_uses_the_cores_other_processes_leave_free():
    assert th.start_threads(2, 1.0, None, 2)[0] == 1
    assert th.start_threads(2, 0.1, 9.0, 2)[0] == 2  # a measurement wins over a lagging load average
    assert th.start_threads(16, 3.2, None, 16)[0] == 13
    assert th.start_threads(16, 0.0, None, 8)[0] == 8  # never above torch's own default
    assert th.start_threads(2, 7.0, None, 2)[0] == 1
    assert th.start_threads(2, None, 6.5, 2)[0] == 1  # no /proc/stat: the load average stands in
    assert th.start_threads(4, None, None, 4)[0] == 4
    assert th.candidate_counts(2, 1) == [1, 2]
    assert th.candidate_counts(16, 13) == [1, 2, 4, 8, 13, 16]
    assert th.candidate_counts(1, 1) == [1]


def test_busy_cores_of_others_sees_a_busy_process_and_not_its_own_work():
    if th.busy_cores_of_others(1, 0.05) is None:
        pytest.skip("no /proc/stat here")
    cores = th.usable_cores()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        measured = th.busy_cores_of_others(cores, 0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert measured is not None and 0.6 <= measured <= cores


@pytest.mark.parametrize("value", ["²", "99999999999999999999", "0", "-3", "abc", "1.5", "٣", "1025"])
def test_omp_num_threads_that_is_no_thread_count_is_ignored_with_the_reason(value):
    choice = th.choose_threads(None, cores=2, load=0.0, busy_others=0.0, environ={"OMP_NUM_THREADS": value})
    assert choice.method == "auto" and choice.threads in (1, 2)
    assert "OMP_NUM_THREADS=" in choice.reason and "ignored" in choice.reason


def test_a_valid_omp_num_threads_is_kept():
    choice = th.choose_threads(None, cores=2, busy_others=0.0, environ={"OMP_NUM_THREADS": " 3 "})
    assert (choice.threads, choice.method) == (3, "environment")


@pytest.mark.parametrize("value", ["²", "99999999999999999999"])
def test_hwinfo_with_a_strange_omp_num_threads_is_no_internal_error(value):
    env = {**os.environ, "OMP_NUM_THREADS": value, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "slr", "hwinfo", "--json"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0 and "internal error" not in done.stdout + done.stderr, done.stdout + done.stderr
    threads = json.loads(done.stdout)["threads"]
    assert threads["method"] == "auto" and 1 <= threads["threads"] <= threads["usable_cores"]
    assert "is not a thread count" in threads["reason"] or "is above 1024" in threads["reason"]


def test_a_run_with_auto_threads_chooses_by_measurement_and_records_it(tmp_path, monkeypatch):
    from slr.data.synthetic import write_synthetic_dataset
    from slr.engine.checkpoint import load_checkpoint
    from slr.engine.run import train

    class Notes:
        wants_memory = False

        def __init__(self):
            self.lines = []

        def note(self, text):
            self.lines.append(text)

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(th, "_torch_default", lambda torch: 2)  # two candidates on any machine
    monkeypatch.setattr(th.ThreadTuner, "window_s", 0.0)
    monkeypatch.setattr(th.ThreadTuner, "rounds", 1)
    # a quiet machine, whatever this one is doing: both counts are worth timing
    monkeypatch.setattr(th, "busy_cores_of_others", lambda cores, window_s=0.0: 0.0)
    monkeypatch.setattr(th.OthersMeter, "sample", lambda self: 0.0)
    write_synthetic_dataset(tmp_path / "clips", 48, num_gloss=3, num_cat=2, min_frames=6, max_frames=12)
    settings = TrainSettings(model="transformer", keypoints_train=tmp_path / "clips", keypoints_val=tmp_path / "clips",
                             num_gloss=3, num_cat=2, epochs=1, batch_size=4, output_dir=tmp_path / "run", plots=False,
                             tensorboard=False, d_model=16, num_heads=2, num_layers=1, ff_dim=32, device="cpu")
    before = torch.get_num_threads()
    monkeypatch.setattr(th, "usable_cores", lambda: 2)
    notes = Notes()
    try:
        train(settings, notes)
        chosen = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    header = next(line for line in notes.lines if "CPU thread(s)" in line)
    assert "chooses among 1, 2 thread(s) by timing its first steps" in header
    decided = [line for line in notes.lines if "chosen by measurement" in line]
    assert decided and decided[0].startswith(f"threads: {chosen} chosen"), notes.lines
    runtime = load_checkpoint(tmp_path / "run" / "SignTransformer_last.pt", need="model")["runtime"]["threads"]
    assert runtime["threads"] == chosen and runtime["measured"][0]["threads"] == chosen
    assert set(runtime["measured"][0]["steps_per_s"]) == {"1", "2"}


def test_a_given_count_is_never_tuned():
    inner = object()
    assert th.tune_during_training({"method": "setting", "threads": 2, "candidates": []}, inner) is inner
    assert th.tune_during_training({"method": "environment", "threads": 1, "candidates": []}, inner) is inner
    assert th.tune_during_training({"method": "auto", "threads": 1, "candidates": [1]}, inner) is inner


def test_a_stalled_count_costs_one_step_not_three_windows():
    # Under load a second thread can take seconds per step: one step of it is a window, and after
    # that window it is not timed again.
    machine = FakeMachine({1: 0.15, 2: 3.3}, start=1)
    tuner = tuner_on(machine)
    at_two = 0
    for _ in range(80):
        at_two += machine.threads == 2
        machine.now += machine.seconds[machine.threads]
        tuner.step_done()
    assert tuner.chosen == 1 and at_two == 1
    assert tuner.decisions[0]["steps_per_s"]["2"] == pytest.approx(1 / 3.3, abs=1e-3)


def test_a_fall_that_changes_nothing_holds_further_probes_back():
    machine = FakeMachine({1: 0.20, 2: 1.0}, start=1)
    tuner = tuner_on(machine, hold_s=60.0)
    machine.run(tuner, 30)
    machine.seconds = {1: 0.6, 2: 3.0}  # the machine got slower for every count: 1 stays the best
    notes = machine.run(tuner, 120)  # about 70 s
    again = [n for n in notes if "again" in n]
    assert len(again) == 1 and tuner.chosen == 1, notes


class FakeMeter:
    """Other processes' CPU use, as OthersMeter.sample reports it."""

    def __init__(self, cores: float):
        self.cores = cores

    def sample(self):
        return self.cores


def test_counts_beyond_the_free_cores_are_not_timed_and_are_timed_once_cores_free_up():
    machine = FakeMachine({1: 0.15, 2: 3.3}, start=1)
    meter = FakeMeter(1.9)  # four busy processes on 2 cores
    tuner = tuner_on(machine, cores=2, others=meter.sample, others_now=1.9)
    notes = machine.run(tuner, 40)
    assert tuner.chosen == 1 and notes[0].startswith("threads: 1 chosen by measurement (other processes take 1.9")
    assert tuner.decisions[0] == {"threads": 1, "steps_per_s": {}, "others_cores": 1.9}
    assert set(machine.counts) == {1}  # not one step at 2 threads
    meter.cores, machine.seconds = 0.05, {1: 0.15, 2: 0.09}  # they ended
    notes = machine.run(tuner, 60)
    assert any("timing 1, 2 thread(s) again" in n for n in notes), notes
    assert tuner.chosen == 2 and machine.threads == 2


def test_with_a_light_load_both_counts_are_timed():
    machine = FakeMachine({1: 0.15, 2: 0.40}, start=1)
    tuner = tuner_on(machine, cores=2, others=FakeMeter(0.4).sample, others_now=0.4)
    machine.run(tuner, 60)
    assert tuner.chosen == 1 and set(tuner.decisions[0]["steps_per_s"]) == {"1", "2"}


def test_with_one_busy_process_on_two_cores_a_second_thread_is_not_timed():
    machine = FakeMachine({1: 0.15, 2: 3.0}, start=1)
    tuner = tuner_on(machine, cores=2, others=FakeMeter(1.0).sample, others_now=1.0)
    machine.run(tuner, 60)
    assert tuner.chosen == 1 and set(machine.counts) == {1}


def test_others_meter_reads_this_machine():
    import time

    meter = th.OthersMeter(th.usable_cores())
    if meter._prev is None:
        pytest.skip("no /proc/stat here")
    ends = time.monotonic() + 0.2
    while time.monotonic() < ends:  # this process's own work is not the others'
        pass
    value = meter.sample()
    assert value is not None and 0.0 <= value <= th.usable_cores()
