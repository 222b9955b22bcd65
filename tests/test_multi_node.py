"""Beyond one machine, simulated on this one: two torchrun launchers joined by c10d rendezvous on
127.0.0.1 (gloo on CPU, one process each) stand for two nodes; a killed or frozen launcher stands
for a lost node; and a run resumed on another number of processes continues exactly.

The comparisons reuse test_interrupt_and_ddp's data, flags and tolerance (1e-4: with dropout and
augmentation off, only the order of floating-point sums differs between 1 and 2 processes).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slr.engine import checkpoint as ckpt
from slr.engine.run import train

from test_interrupt_and_ddp import _args, _compare, _log, _settings

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")]

REPO = Path(__file__).resolve().parents[1]
EXACT = ["--dropout", "0", "--no-augment"]  # as the single-machine DDP test: only summation order differs
TOL = 1e-4


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(port: int, job: str, args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """One node's launcher, as each node of a SLURM job would start it (`srun torchrun ...`)."""
    cwd.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", job,
               "--max_restarts", "0", "-m", "slr", *args]
    # Its own session, so that the whole "node" (launcher and workers) can be stopped at once.
    return subprocess.Popen(command, cwd=cwd, env=_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _two_nodes(tmp_path: Path, args: list[str]) -> tuple[dict[str, subprocess.Popen], dict[str, Path]]:
    port, job = _free_port(), f"job-{os.getpid()}-{time.time_ns()}"
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    nodes = {"a": _node(port, job, args, tmp_path / "node_a", logs["a"])}
    # Node a hosts the rendezvous store (as the node named in --rdzv_endpoint does): start b once it
    # listens, so that b, the node the tests take away, is never the store's host.
    deadline = time.time() + 120
    while time.time() < deadline and nodes["a"].poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    nodes["b"] = _node(port, job, args, tmp_path / "node_b", logs["b"])
    return nodes, logs


def _finish(nodes: dict[str, subprocess.Popen], timeout: float) -> dict[str, int]:
    try:
        return {name: proc.wait(timeout=timeout) for name, proc in nodes.items()}
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                _signal_tree(proc.pid, signal.SIGKILL)
                proc.wait()


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants: torchrun starts its workers in sessions of their own, so
    the launcher's process group alone would leave them running."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def _signal_tree(pid: int, sig: signal.Signals) -> None:
    for p in _process_tree(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _wait_for_epochs(log: Path, epochs: int, nodes: dict[str, subprocess.Popen], deadline_s: float = 300) -> None:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) > epochs:
            return
        if any(proc.poll() is not None for proc in nodes.values()):
            break
        time.sleep(0.05)
    pytest.fail(f"the two-node run did not reach epoch {epochs}")


def _history(outcome) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in row.items() if isinstance(v, (int, float))} for row in outcome.history]


def test_two_nodes_match_one_process_and_only_global_rank_0_writes(clips, tmp_path, one_thread):
    """2 nodes x 1 process x batch 8 == 1 process x batch 16. Each node runs in its own directory with
    a relative --output-dir, so whatever a node writes lands in its own directory: exactly one of
    them (global rank 0's) gets the run's files, the other nothing at all, and it prints no progress.
    (With the one absolute folder of a shared file system, a second writer would be invisible.)"""
    single = train(_settings(clips, tmp_path / "single", epochs=2, batch_size=16, dropout=0.0, augment=False))
    nodes, logs = _two_nodes(tmp_path, _args(clips, Path("run"), "--epochs", "2", "--batch-size", "8", *EXACT))
    codes = _finish(nodes, timeout=400)
    output = {name: log.read_text() for name, log in logs.items()}
    assert codes == {"a": 0, "b": 0}, output

    wrote = {name: sorted(p.relative_to(tmp_path / f"node_{name}").as_posix()
                          for p in (tmp_path / f"node_{name}").rglob("*") if p.is_file()) for name in ("a", "b")}
    writer = [name for name in wrote if wrote[name]]
    assert len(writer) == 1, wrote  # one node wrote, the other wrote nothing
    other = "b" if writer == ["a"] else "a"
    files = [f for f in wrote[writer[0]] if not f.startswith("run/tensorboard/")]
    assert files == ["run/SignTransformer_best.pt", "run/SignTransformer_last.pt", "run/log.csv", "run/settings.json"]
    # TensorBoard's event files, where its package is installed: on that node alone too
    assert all(f.startswith("run/tensorboard/events.out.tfevents.") for f in set(wrote[writer[0]]) - set(files))
    assert "epoch 1/2" in output[writer[0]] and "epoch 1/2" not in output[other]

    run = tmp_path / f"node_{writer[0]}" / "run"
    _compare(_history(single), _log(run / "log.csv"), tol=TOL)
    state = ckpt.load_checkpoint(run / "SignTransformer_last.pt")
    assert state["runtime"]["world_size"] == 2


def test_a_killed_node_stops_the_other_and_its_last_checkpoint_resumes_on_one_process(clips, tmp_path, one_thread):
    """Kill one node (launcher and worker, SIGKILL: no chance to say goodbye) after two epochs. The
    other stops by itself with a message naming what happened, exit status non-zero; `_last.pt`
    is whole, and `slr resume` on one process (batch 16 = 8 x 2) continues it exactly."""
    shared = tmp_path / "shared" / "run"  # the one folder every node writes to
    # No schedule over --epochs: the run is stopped long before its 300 and compared with a shorter one.
    nodes, logs = _two_nodes(tmp_path, _args(clips, shared, "--epochs", "300", "--batch-size", "8", *EXACT,
                                             "--scheduler", "none", "--dist-timeout-s", "60"))
    try:
        _wait_for_epochs(shared / "log.csv", 2, nodes)
        _signal_tree(nodes["b"].pid, signal.SIGKILL)
        codes = _finish({"a": nodes["a"]}, timeout=180)  # far below the 30 minutes of torch's default
    finally:
        _finish(nodes, timeout=30)
    survivor = logs["a"].read_text()
    assert codes["a"] != 0
    assert "stopped because another process of this run failed or was lost" in survivor, survivor[-3000:]
    assert "internal error" not in survivor

    last = shared / "SignTransformer_last.pt"
    state = ckpt.load_checkpoint(last, need="resume")
    epochs = state["epoch"]
    assert epochs >= 2 and state["step_in_epoch"] == 0  # a whole epoch's checkpoint, never a partial one
    if "the last complete one" in survivor:  # rank 0 survived: it names the checkpoint
        assert str(last) in survivor
    resumed = subprocess.run([sys.executable, "-m", "slr", "resume", str(last), "--epochs", str(epochs + 1)],
                             capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "batch 16 per process keeps the global batch of 16" in resumed.stdout

    straight = train(_settings(clips, tmp_path / "single", epochs=epochs + 1, batch_size=16, dropout=0.0,
                               augment=False, scheduler=None))
    _compare(_history(straight), _log(shared / "log.csv"), tol=TOL)


def test_a_frozen_node_is_given_up_after_the_timeout(clips, tmp_path):
    """A node that stops answering without closing its connections (frozen, unplugged: SIGSTOP here)
    is noticed only by the timeout: after --dist-timeout-s the other stops and says so. Without the
    setting it would wait torch's default 30 minutes (this test would fail on its own time limit)."""
    shared = tmp_path / "shared" / "run"
    nodes, logs = _two_nodes(tmp_path, _args(clips, shared, "--epochs", "300", "--batch-size", "8",
                                             "--dist-timeout-s", "10"))
    try:
        _wait_for_epochs(shared / "log.csv", 1, nodes)
        _signal_tree(nodes["b"].pid, signal.SIGSTOP)
        codes = _finish({"a": nodes["a"]}, timeout=180)
    finally:
        _signal_tree(nodes["b"].pid, signal.SIGKILL)
        _finish(nodes, timeout=30)
    survivor = logs["a"].read_text()
    assert codes["a"] != 0
    assert "(no answer from another process within 10 s)" in survivor, survivor[-3000:]
    ckpt.load_checkpoint(shared / "SignTransformer_last.pt", need="resume")


# -- another number of processes on resume ------------------------------------------------------------

#: `python stop_at.py train ...` is `slr train ...` with a real Ctrl-C (SIGINT to itself) delivered
#: by rank 0 right after optimizer step STOP: a mid-epoch interruption at a known step.
STOP_AT = textwrap.dedent(
    """
    import os, signal, sys
    import slr.engine.training as trainer

    STOP, steps = int(os.environ["STOP_AFTER_STEPS"]), [0]
    trainer.SYNC_WINDOW = 1  # agree at every step, so that the stop lands at STOP under torchrun too
    original = trainer.TrainStep.optimizer_step

    def step(self):
        original(self)
        steps[0] += 1
        if steps[0] == STOP and self.dist.is_main:
            os.kill(os.getpid(), signal.SIGINT)

    trainer.TrainStep.optimizer_step = step
    from slr.cli import main
    sys.argv[0] = "slr"
    main()
    """
)


def _interrupted(tmp_path: Path, args: list[str], processes: int, stop: int) -> Path:
    script = tmp_path / "stop_at.py"
    script.write_text(STOP_AT)
    launch = [sys.executable, str(script)] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), str(script)]
    proc = subprocess.run([*launch, *args], capture_output=True, text=True, env={**_env(), "STOP_AFTER_STEPS": str(stop)},
                          timeout=300)
    assert "resumable checkpoint written" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Path(args[args.index("--output-dir") + 1]) / "SignTransformer_last.pt"


def _resume(last: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    launch = ["-m", "slr"] if processes == 1 else [
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m", "slr"]
    return subprocess.run([sys.executable, *launch, "resume", str(last), *extra], capture_output=True, text=True,
                          env=_env(), timeout=300)


@pytest.mark.parametrize("trained_on, resumed_on", [(2, 1), (1, 2)])
def test_resumed_mid_epoch_on_another_number_of_processes_continues_exactly(
    clips, tmp_path, one_thread, trained_on, resumed_on
):
    """72 clips, global batch 16: 5 steps an epoch. Stopped after step 7 (inside epoch 2), resumed on
    the other number of processes: every epoch's numbers, the interrupted one's included, match an
    uninterrupted single process run."""
    straight = train(_settings(clips, tmp_path / "single", epochs=3, batch_size=16, dropout=0.0, augment=False))
    out = tmp_path / "run"
    batch = 16 // trained_on
    last = _interrupted(tmp_path, _args(clips, out, "--epochs", "3", "--batch-size", str(batch), *EXACT), trained_on, 7)
    state = ckpt.load_checkpoint(last, need="resume")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)
    assert state["runtime"]["world_size"] == trained_on

    resumed = _resume(last, resumed_on)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"batch {16 // resumed_on} per process keeps the global batch of 16" in resumed.stdout
    _compare(_history(straight), _log(out / "log.csv"), tol=TOL)


def test_a_stop_at_an_epochs_last_step_saves_the_whole_epoch_and_resumes_exactly(clips, tmp_path, one_thread):
    """72 clips in batches of 16: 5 steps an epoch; stopped after step 5, the last of epoch 1. Before,
    the checkpoint said "step 5 of epoch 2", which the resume refused as damaged ("an epoch of this
    run has 5 steps"); now the epoch ends (validation, log, checkpoint) and the run stops after it."""
    straight = train(_settings(clips, tmp_path / "single", epochs=2, batch_size=16, dropout=0.0, augment=False))
    out = tmp_path / "run"
    last = _interrupted(tmp_path, _args(clips, out, "--epochs", "2", "--batch-size", "16", *EXACT), 1, 5)
    state = ckpt.load_checkpoint(last, need="resume")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 0)
    resumed = _resume(last, 1)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    _compare(_history(straight), _log(out / "log.csv"), tol=1e-6)


def test_a_global_batch_the_new_processes_cannot_share_is_refused(clips, tmp_path, one_thread):
    train(_settings(clips, tmp_path / "run", epochs=1, batch_size=5))
    last = tmp_path / "run" / "SignTransformer_last.pt"
    before = last.read_bytes()
    refused = _resume(last, 2, "--epochs", "2")
    assert refused.returncode != 0
    assert "global batch of 5 (5 per process x 1 process), which 2 processes cannot share evenly" in refused.stderr
    assert "internal error" not in refused.stderr
    assert last.read_bytes() == before


def test_a_two_process_run_resumed_mid_epoch_keeps_every_ranks_random_streams(clips, tmp_path):
    """Same number of processes, dropout and augmentation on: each rank continues its own random
    streams (they part after the first step: ranks drop out over batches of different lengths), so
    the resumed run is the uninterrupted one, not only to 1e-4."""
    flags = ["--epochs", "3", "--batch-size", "8", "--mirror-prob", "0.5"]
    straight = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "slr",
         *_args(clips, tmp_path / "straight", *flags)], capture_output=True, text=True, env=_env(), timeout=300)
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]
    last = _interrupted(tmp_path, _args(clips, tmp_path / "run", *flags), 2, 7)
    assert len(ckpt.load_checkpoint(last, need="resume")["rng_ranks"]) == 2
    resumed = _resume(last, 2)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    _compare(_log(tmp_path / "straight" / "log.csv"), _log(tmp_path / "run" / "log.csv"), tol=1e-6)
