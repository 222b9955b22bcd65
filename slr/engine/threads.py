"""How many CPU threads torch computes with: `threads` (None = auto), chosen by measuring.

Why not torch's default (one thread per core): on a busy machine OpenMP threads wait for each
other at every parallel region, and a core another process holds stalls them all for whole
scheduler slices; a shared 2-core machine trained 3-5x slower with 2 threads than with 1. On a
quiet one the second thread is worth about 1.5x. A load average cannot tell these apart: it lags
by a minute (it still holds a process that has just ended) and counts waiting processes that
take no CPU. So auto measures, twice:

1. At start (`choose_threads`): the CPU time other processes take on the usable cores over a
   short window (/proc/stat minus this process's own), so the run starts on the cores that are
   free now. `slr hwinfo` shows this measurement.
2. During training (`ThreadTuner`): windows of real training steps at each candidate count,
   interleaved in the first seconds, keep the fastest; measured again when the throughput falls
   sharply, when other processes leave more cores free, and every few minutes. Counts beyond the
   free cores are not timed: under load one step of them can take seconds.

Thread counts change the last bits of float sums, so a run that must repeat bit for bit sets
`--threads` (or OMP_NUM_THREADS, which is kept when it is a valid count).
`benchmarks/cpu_threads.py` measures the choice against fixed counts (docs/results.md).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Optional

#: how long the start-up look at other processes' CPU use lasts
BUSY_WINDOW_S = 0.25


@dataclass
class ThreadChoice:
    threads: int
    reason: str  # why, in words (shown in the run header and by `slr hwinfo`)
    method: str  # "setting", "environment" or "auto"
    usable_cores: int
    load: Optional[float]  # 1-minute load average on the usable cores, where known (for reference only)
    busy_others: Optional[float] = None  # cores' worth of CPU other processes took over BUSY_WINDOW_S
    candidates: list[int] = field(default_factory=list)  # what a training run times (auto only)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_on_usable_cores(cores: int) -> Optional[float]:
    """The 1-minute load average, scaled to the cores this process may use (a container limited
    to 2 of 64 cores sees the whole machine's load)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    machine = os.cpu_count() or cores
    return load * cores / machine if machine > cores else load


# -- 1. other processes' CPU time now ----------------------------------------------------------


def _cpu_jiffies(cpus: Optional[set[int]]) -> Optional[tuple[int, int]]:
    """(busy, total) jiffies of the given CPUs from /proc/stat (steal counts as busy: on a VM it
    is another guest holding the core)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    busy = total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            index = int(name[3:])
            values = [int(v) for v in rest.split()[:8]]
        except ValueError:
            continue
        if cpus is not None and index not in cpus:
            continue
        values += [0] * (8 - len(values))
        user, nice, system, idle, iowait, irq, softirq, steal = values
        busy += user + nice + system + irq + softirq + steal
        total += user + nice + system + idle + iowait + irq + softirq + steal
    return (busy, total) if total else None


class OthersMeter:
    """Cores' worth of CPU time other processes took on the usable cores since the last sample
    (this process's own use left out), without waiting: the tuner samples it once per window."""

    def __init__(self, cores: int):
        self.cores = cores
        try:
            self._cpus: Optional[set[int]] = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self._cpus = None
        self._prev = self._read()

    def _read(self) -> Optional[tuple[tuple[int, int], float, float]]:
        jiffies = _cpu_jiffies(self._cpus)
        return None if jiffies is None else (jiffies, _own_cpu_seconds(), time.monotonic())

    def sample(self) -> Optional[float]:
        now = self._read()
        prev, self._prev = self._prev, now
        if now is None or prev is None or now[0][1] <= prev[0][1]:
            return None
        share = (now[0][0] - prev[0][0]) / (now[0][1] - prev[0][1])  # of all the usable cores' time
        own = (now[1] - prev[1]) / max(now[2] - prev[2], 1e-9)
        return max(0.0, min(float(self.cores), share * self.cores - own))


def busy_cores_of_others(cores: int, window_s: float = BUSY_WINDOW_S) -> Optional[float]:
    """Cores' worth of CPU time that other processes took on the usable cores over `window_s`;
    None where /proc/stat cannot be read."""
    meter = OthersMeter(cores)
    if meter._prev is None:
        return None
    time.sleep(window_s)
    return meter.sample()


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def start_threads(cores: int, busy_others: Optional[float], load: Optional[float], torch_default: int) -> tuple[int, str]:
    """The count a run starts with: the usable cores that other processes leave free now, at least
    1, at most torch's default. Pure, so it can be tested. Without a measurement (no /proc/stat),
    the load average stands in."""
    ceiling = max(1, min(cores, torch_default))
    if busy_others is not None:
        taken, how = busy_others, f"other processes took {busy_others:.1f} of {cores} usable core(s) just now"
    elif load is not None:
        taken, how = load, f"{cores} usable core(s), load {load:.1f} (other processes' CPU time not readable here)"
    else:
        return ceiling, f"{cores} usable core(s), other processes' use unknown"
    free = max(1, min(ceiling, math.floor(cores - taken + 0.5)))
    return free, how


def auto_threads(cores: int, load: Optional[float], torch_default: int) -> tuple[int, str]:
    """The start rule fed a load average instead of a measurement (kept for callers and tests)."""
    return start_threads(cores, None, load, torch_default)


def candidate_counts(ceiling: int, start: int) -> list[int]:
    """The counts a training run times: 1, powers of two, the ceiling and the start value (at most
    a handful, so that the measuring stays within the first seconds)."""
    counts = {1, ceiling, start}
    n = 2
    while n < ceiling:
        counts.add(n)
        n *= 2
    return sorted(c for c in counts if 1 <= c <= ceiling)


def _thread_limit() -> int:
    from slr.settings import ThreadSettings

    for rule in ThreadSettings.model_fields["threads"].metadata:
        if getattr(rule, "le", None) is not None:
            return int(rule.le)
    return 1024


def environment_threads(environ: Mapping[str, str]) -> tuple[Optional[int], Optional[str]]:
    """OMP_NUM_THREADS as a count, or (None, why it is not one). Only ASCII digits count ('²' is a
    digit to str.isdigit but not to int), within the range --threads takes."""
    raw = environ.get("OMP_NUM_THREADS")
    if raw is None or not raw.strip():
        return None, None
    value, limit = raw.strip(), _thread_limit()
    shown = value if len(value) <= 24 else value[:21] + "..."
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        return None, f"OMP_NUM_THREADS={shown!r} is not a thread count: ignored"
    if int(value) > limit:
        return None, f"OMP_NUM_THREADS={shown} is above {limit}, the most {{{{threads}}}} takes: ignored"
    return int(value), None


def choose_threads(requested: Optional[int], *, cores: Optional[int] = None, load: Optional[float] = None,
                   busy_others: Optional[float] = None, environ: Optional[Mapping[str, str]] = None,
                   measure: bool = True) -> ThreadChoice:
    """The setting, else a valid OMP_NUM_THREADS, else the start count of the auto rule.
    `measure=False` (or a given `busy_others`) skips the short look at /proc/stat."""
    import torch

    cores = usable_cores() if cores is None else cores
    environ = os.environ if environ is None else environ
    if load is None:
        load = load_on_usable_cores(cores)
    if requested is not None:
        return ThreadChoice(requested, "as given", "setting", cores, load)
    env, refused = environment_threads(environ)
    if env is not None:
        return ThreadChoice(env, f"OMP_NUM_THREADS={env} in the environment", "environment", cores, load)
    if busy_others is None and measure:
        busy_others = busy_cores_of_others(cores)
    ceiling = max(1, min(cores, _torch_default(torch)))
    n, why = start_threads(cores, busy_others, load, ceiling)
    candidates = candidate_counts(ceiling, n)
    reason = f"auto: {why}" + (f"; {refused}" if refused else "")
    if len(candidates) > 1:
        reason += (f"; training starts with {n} and chooses among {', '.join(map(str, candidates))} thread(s) by "
                   "timing its first steps")
    return ThreadChoice(n, reason, "auto", cores, load, busy_others, candidates)


def _torch_default(torch) -> int:
    # torch's own default (one per physical core), remembered before this module first changes it
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = torch.get_num_threads()
    return _DEFAULT


_DEFAULT: Optional[int] = None
_INTEROP_SET = False


def apply_threads(requested: Optional[int]) -> ThreadChoice:
    """Choose and set torch's intra-op threads; inter-op threads too, the first time, where torch
    still allows it (it refuses once any parallel work has run)."""
    import torch

    global _INTEROP_SET
    choice = choose_threads(requested)
    torch.set_num_threads(choice.threads)
    if not _INTEROP_SET:
        _INTEROP_SET = True
        try:
            torch.set_num_interop_threads(choice.threads)
        except RuntimeError:  # already started: leave it (eager training barely uses it)
            pass
    return choice


# -- 2. windows of real training steps ---------------------------------------------------------


class ThreadTuner:
    """Times windows of training steps at each candidate count and keeps the fastest.

    The trainer's step loop reports each finished step (`step_done`) and each gap that is not a
    training step (`pause`: an epoch's validation pass, a smaller last batch). Probing runs
    `rounds` rounds, each one window per candidate in an order that rotates, so that a change in
    the machine's load falls on every candidate alike. A window is at least `min_steps` timed
    steps and `window_s` seconds, or one step of `long_window_s` (a new count's threads start in
    microseconds: its first step is timed too). A count below `hopeless` times the fastest is not
    timed again (under load a second thread can be 20x slower: each of its windows costs seconds).
    With `others` (an `OthersMeter`'s sample, taken each window) only counts up to the cores
    other processes leave free (rounded, at least 1) are timed; with one such count it is chosen
    untimed.
    The winner is the median-fastest; a count with fewer threads wins within `tie` of it (it
    leaves more to other processes). Then every window is compared with the winner's speed:
    `patience` windows in a row below `drop` times it, or with more free cores than the last probe
    timed, start a new probe (after one that changed nothing, not again for `hold_s`), and so
    does `recheck_s` seconds since the last choice.
    """

    # Long enough that a scheduler slice lost to another process averages out (a step of the
    # guide's model takes 0.1-0.3 s on one core), short enough that 3 rounds of 2 counts take
    # about 3 s of a run.
    window_s = 0.5
    min_steps = 2
    rounds = 3
    tie = 0.05
    drop = 0.6
    patience = 2
    recheck_s = 300.0
    long_window_s = 2.0  # one step this long is a window: a stalled count is known after one step
    hopeless = 0.5  # a count below this share of the fastest is not timed again in this probe
    hold_s = 60.0  # after a fall that changed nothing, no new probe for a fall this soon

    def __init__(self, candidates: list[int], start: int, *, set_threads: Optional[Callable[[int], None]] = None,
                 clock: Callable[[], float] = time.perf_counter, cores: Optional[int] = None,
                 others: Optional[Callable[[], Optional[float]]] = None, others_now: Optional[float] = None,
                 **options: float):
        if set_threads is None:
            import torch

            set_threads = torch.set_num_threads
        self.candidates = sorted(set(candidates))
        self.current = start
        self._set = set_threads
        self._clock = clock
        for name, value in options.items():
            if not hasattr(ThreadTuner, name):
                raise TypeError(f"unknown option {name}")
            setattr(self, name, value)
        self.chosen: Optional[int] = None
        self.reference: Optional[float] = None  # the chosen count's steps/s when it was chosen
        self.decisions: list[dict[str, Any]] = []  # each probe's evidence, for the run's records
        self._speeds: dict[int, list[float]] = {}
        self._plan: list[int] = []
        self._last: Optional[float] = None  # end of the previous timed step
        self._steps = 0
        self._elapsed = 0.0
        self._slow = 0
        self._decided_at = 0.0
        self._hold_until = 0.0
        self._fell = False  # the running probe was started by a change of speed or of free cores
        self._freed = 0  # windows in a row in which more cores were free than the last probe timed
        self._cores = cores or max(candidates)
        self._others = others  # samples other processes' CPU since its last call (OthersMeter.sample)
        self._others_now = others_now  # cores' worth; None: unknown, every candidate is timed
        self._timed: set[int] = set()  # the counts the last probe timed
        self._note: Optional[str] = None  # a decision taken outside step_done, said at the next step
        self._begin_probe()

    @property
    def probing(self) -> bool:
        return bool(self._plan)

    def pause(self) -> None:
        """Something other than a training step ran since the last one: do not time across it."""
        self._last = None

    def step_done(self) -> Optional[str]:
        """One training step finished; returns a sentence when a choice was made or a probe began."""
        now = self._clock()
        if self._note is not None:
            note, self._note = self._note, None
            self._last = now
            return note
        if self._last is None:
            self._last = now
            return None
        self._steps += 1
        self._elapsed += now - self._last
        self._last = now
        enough = self._steps >= self.min_steps and self._elapsed >= self.window_s
        if not enough and self._elapsed < self.long_window_s:
            return None
        speed = self._steps / self._elapsed
        self._steps, self._elapsed = 0, 0.0
        return self._window_done(speed, now)

    def _window_done(self, speed: float, now: float) -> Optional[str]:
        if self._others is not None:
            self._others_now = self._others()
        if self._plan:
            self._speeds[self._plan.pop(0)].append(speed)
            self._drop_hopeless()
            if self._plan:
                self._switch(self._plan[0])
                return None
            return self._decide(now)
        if self.reference is None:
            self.reference = speed
            return None
        self._slow = self._slow + 1 if speed < self.drop * self.reference else 0
        self._freed = self._freed + 1 if max(self._plausible()) > max(self._timed) else 0
        if self._slow >= self.patience and now >= self._hold_until:
            why = (f"{speed:.2f} steps/s, below {self.drop:g}x the {self.reference:.2f} measured when {self.chosen} "
                   "was chosen")
        elif self._freed >= self.patience and now >= self._hold_until:
            why = f"other processes now take {self._others_now:.1f} of {self._cores} core(s)"
        elif now - self._decided_at >= self.recheck_s:
            self._begin_probe()  # a routine look: no line for it unless the choice changes
            return None
        else:
            return None
        self._fell = True
        self._begin_probe()
        return f"threads: {why}: timing {', '.join(map(str, sorted(self._timed)))} thread(s) again" + (
            "" if self._plan else f"; {self._note_taken()}")

    def _note_taken(self) -> str:
        note, self._note = self._note or "", None
        return note

    def _plausible(self) -> list[int]:
        """The candidates worth timing: up to the cores other processes leave free, rounded, at
        least 1. A count beyond that waits on them: measured here 8-30x slower whenever another
        process held half a core or more, and one window of it costs seconds."""
        if self._others_now is None:
            return self.candidates
        limit = math.floor(self._cores - self._others_now + 0.5)
        return [n for n in self.candidates if n <= limit] or self.candidates[:1]

    def _begin_probe(self) -> None:
        counts = self._plausible()
        self._timed = set(counts)
        self._speeds = {n: [] for n in counts}
        self._plan = []
        self._slow = self._freed = 0
        if len(counts) == 1:  # nothing to compare: the one plausible count, with the CPU use as evidence
            self._switch(counts[0])
            self._note = self._decide(self._clock(), evidence_only=True)
            return
        k = len(counts)
        first = counts.index(self.current) if self.current in counts else 0
        for r in range(self.rounds):  # from the count running now (no switch to start), rotating
            i = (first + r) % k
            self._plan += counts[i:] + counts[:i]
        self._switch(self._plan[0])

    def _drop_hopeless(self) -> None:
        """Counts far slower than the fastest timed so far leave the plan: under load a second
        thread can be 20x slower, and every window of it costs the run seconds."""
        timed = {n: statistics.median(v) for n, v in self._speeds.items() if v}
        fastest = max(timed.values())
        keep = [n for n in self._plan if n not in timed or timed[n] >= self.hopeless * fastest]
        if len(set(keep)) == 1 and all(self._speeds[n] for n in set(keep)) and len(timed) == len(self._speeds):
            keep = []  # only the fastest is left, and it has been timed: decide now
        self._plan = keep

    def _switch(self, n: int) -> None:
        if n != self.current:
            self._set(n)
            self.current = n

    def _decide(self, now: float, evidence_only: bool = False) -> str:
        before = self.chosen
        if evidence_only:  # one plausible count: the CPU other processes take is the evidence
            best, medians = self.current, {}
            why = (f"other processes take {self._others_now:.1f} of {self._cores} usable core(s): a second "
                   "count would only wait on them")
        else:
            medians = {n: statistics.median(v) for n, v in self._speeds.items() if v}
            fastest = max(medians.values())
            best = min(n for n, m in medians.items() if m >= (1 - self.tie) * fastest)
            why = "training steps/s by thread count, median of interleaved windows: " + ", ".join(
                f"{n}: {m:.2f} ({len(self._speeds[n])} window{'s' if len(self._speeds[n]) > 1 else ''})"
                for n, m in medians.items())
        if self._fell and before == best:
            self._hold_until = now + self.hold_s  # the change was the machine's, not the count's
        self._fell = False
        # the reference speed: the winner's, or (evidence only) the first window's after it
        self.chosen, self.reference, self._decided_at, self._slow = best, medians.get(best), now, 0
        self._switch(best)
        record: dict[str, Any] = {"threads": best, "steps_per_s": {str(n): round(m, 3) for n, m in medians.items()}}
        if self._others_now is not None:
            record["others_cores"] = round(self._others_now, 2)
        self.decisions.append(record)
        verb = "chosen" if before is None else ("kept" if before == best else f"chosen (was {before})")
        return f"threads: {best} {verb} by measurement ({why})"


class TunedObserver:
    """Passes everything to the run's observer, and tells the tuner where the training steps
    are: the hook by which `engine.run` times windows without a change to the step loop."""

    def __init__(self, inner: Any, tuner: ThreadTuner, record: Optional[dict[str, Any]] = None):
        self._inner = inner
        self.tuner = tuner
        self._record = record  # the run's `runtime["threads"]`, which checkpoints carry
        self._steps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def epoch_start(self, epoch: int, total_epochs: int, steps: int, done_steps: int) -> None:
        self.tuner.pause()  # the validation pass and the checkpoint writes are not training steps
        self._steps = steps
        self._inner.epoch_start(epoch, total_epochs, steps, done_steps)

    def step(self, done_steps: int, samples_per_s: float, loss: Optional[float]) -> None:
        self._inner.step(done_steps, samples_per_s, loss)
        if done_steps >= self._steps:
            self.tuner.pause()  # the last batch of an epoch is smaller: its time says nothing
            return
        note = self.tuner.step_done()
        if note is None:
            return
        if self._record is not None and self.tuner.chosen is not None:
            self._record["threads"] = self.tuner.chosen
            self._record["measured"] = list(self.tuner.decisions)
        self._inner.note(note)


def tuner_for(record: Mapping[str, Any], **tuner_options: Any) -> Optional[ThreadTuner]:
    """The tuner of a run whose `runtime["threads"]` is `record` (a `ThreadChoice.as_dict()`), or
    None unless the count is auto and there is more than one candidate to time."""
    if record.get("method") != "auto" or len(record.get("candidates") or ()) < 2:
        return None
    cores = record.get("usable_cores") or max(record["candidates"])
    return ThreadTuner(record["candidates"], record["threads"], cores=cores, others=OthersMeter(cores).sample,
                       others_now=record.get("busy_others"), **tuner_options)


def tune_during_training(record: dict[str, Any], inner: Any, **tuner_options: Any) -> Any:
    """The observer the trainer should report to: `inner`, watched by the run's tuner when there is
    one; `record` is updated with what the measuring chooses (checkpoints carry it)."""
    tuner = tuner_for(record, **tuner_options)
    return inner if tuner is None else TunedObserver(inner, tuner, record)
