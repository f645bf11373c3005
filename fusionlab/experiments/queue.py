"""The reference runs of the papers' footing as a queue: every run the pretrained comparisons
still lack (``Experiment.pretrained``, on the ImageNet encoder at the reference schedule),
trained a few at a time in processes of their own and merged into the stored results as each
one finishes. ``python -m fusionlab experiment queue`` is its command line.

One run is one ``experiment run NAME --variants V --seeds S --out PART --checkpoints DIR``
process that saves its training state every 100 steps, so a queue stopped at any moment (or a
machine that goes down) loses at most the last 100 steps of each run in flight: the next
queue merges what was stored and resumes those runs from their checkpoints. On a CPU,
processes of one thread each use the cores better than one process of many threads (the
models are small); on a GPU several processes share the device.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import fusionlab
from fusionlab.checkpoints import load_checkpoint
from fusionlab.experiments.ablations import EXPERIMENTS
from fusionlab.experiments.curves import IMAGENET
from fusionlab.experiments.profiles import Profile, with_encoder
from fusionlab.experiments.runner import (run_experiment, run_slug, stale_copy,
                                          variant_definitions)
from fusionlab.experiments.stats import run_precision
from fusionlab.experiments.store import (configuration_name, departures, merge_results,
                                         read_results, stored_config, stored_path,
                                         stored_results, with_defaults)
from fusionlab.speed import PRECISIONS

SEEDS = (0, 1, 2, 3, 4)
"""The seeds of the footing comparisons: five, for paired 95% intervals."""

REFERENCE_PRECISION = "fp32"
"""The autocast precision of the reference runs: float32, which every machine computes alike.
bfloat16 autocast is the fastest on a CPU that has it natively and is emulated (slower) on
the others, so that ``"auto"`` would make one machine's runs bf16 and another's fp32, and a
gain paired by seed would mix the two."""

FIRST_SEEDS = 3
"""Seeds below this come first for every comparison, so that each block that finishes already
gives a paired interval; the rest of the seeds follow."""


def _run_of(job: "Job", results: dict) -> dict | None:
    """The run of ``job`` (its variant and seed) in ``results``, or ``None``."""
    return next((r for r in results["runs"]
                 if r["variant"] == job.variant and r["seed"] == job.seed), None)


@dataclasses.dataclass(frozen=True)
class Job:
    """One reference run: a variant of an experiment, trained once with one seed."""

    experiment: str
    variant: str
    seed: int

    @property
    def slug(self) -> str:
        """A file name for the job's results, log and checkpoint (``run_slug``)."""
        return run_slug(self.experiment, self.variant, self.seed)


def footing_profile(profile: Profile, steps: int) -> Profile:
    """``profile`` on the ImageNet encoder for ``steps`` training steps: the configuration of
    the footing comparisons' reference runs."""
    return with_encoder(dataclasses.replace(profile, steps=steps), IMAGENET)


def footing_jobs(seeds=SEEDS, experiments=None) -> list[Job]:
    """Every run of the pretrained comparisons of ``experiments`` (default: all) for
    ``seeds``, the borrowed variants' too (``pending_jobs`` keeps those only where the
    borrower must train its own), in the order they are worth running: the seeds below
    ``FIRST_SEEDS`` of each experiment's first comparison (its headline), then of its other
    comparisons, then the remaining seeds; experiments in chapter order within each block.

    Raises:
        ValueError: an unknown experiment.
    """
    unknown = sorted(set(experiments or ()) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; known: {list(EXPERIMENTS)}")
    names = [n for n in EXPERIMENTS if experiments is None or n in experiments]
    ranked = []
    for rank, name in enumerate(names):
        experiment = EXPERIMENTS[name]
        headline = set(experiment.pretrained[0]) if experiment.pretrained else set()
        for order, variant in enumerate(experiment.pretrained_variants):
            for seed in seeds:
                key = (seed >= FIRST_SEEDS, variant not in headline, rank, seed, order)
                ranked.append((key, Job(name, variant, seed)))
    return [job for _, job in sorted(ranked, key=lambda pair: pair[0])]


def pending_jobs(jobs: list[Job], profile: Profile,
                 precision: str = REFERENCE_PRECISION) -> list[Job]:
    """The ``jobs`` whose run is not in the stored results of ``profile``'s configuration.

    A job of a borrowed variant (``Experiment.borrowed``) is pending only when its own
    experiment stores that seed's run at another autocast precision than ``precision`` (or
    without recording one): the borrower then trains its own (``runner.borrowed_runs``),
    which replaces a copy of that run (``runner.stale_copy``). Otherwise its own experiment's
    job trains the run and the queue copies it (``refresh_borrowers``).

    Raises:
        ValueError: a corrupt results file.
    """
    config = stored_config(profile)
    runs = {name: (stored_results(name, config) or {}).get("runs", [])
            for name in dict.fromkeys(job.experiment for job in jobs)}

    def pending(job: Job) -> bool:
        if any(r["variant"] == job.variant and r["seed"] == job.seed
               and not stale_copy(r, precision) for r in runs[job.experiment]):
            return False
        if job.variant not in EXPERIMENTS[job.experiment].borrowed:
            return True
        source, variant = EXPERIMENTS[job.experiment].borrowed[job.variant]
        return any(r["variant"] == variant and r["seed"] == job.seed
                   and run_precision(r) != precision
                   for r in (stored_results(source, config) or {}).get("runs", []))

    return [job for job in jobs if pending(job)]


def job_command(job: Job, profile: Profile, part: Path, require_data: bool = True,
                checkpoints: Path | None = None,
                precision: str = REFERENCE_PRECISION) -> list[str]:
    """The ``experiment run`` command line that trains ``job`` into the file ``part`` at the
    autocast ``precision``, saving its checkpoint in the folder ``checkpoints`` (``None``: no
    checkpoints)."""
    steps, encoder = departures(stored_config(profile))
    return [sys.executable, "-m", "fusionlab", "experiment", "run", job.experiment,
            "--profile", profile.name, "--variants", job.variant, "--seeds", str(job.seed),
            "--out", str(part), "--precision", precision,
            *(["--checkpoints", str(checkpoints)] if checkpoints is not None else []),
            *(["--steps", str(steps)] if steps else []),
            *(["--encoder", encoder] if encoder else []),
            *(["--require-data"] if require_data else [])]


def merge_part(job: Job, part: Path, profile: Profile) -> bool:
    """Merge the results file ``part`` of one finished ``job`` into the stored results of
    ``profile``'s configuration; ``False`` when the stored results hold its run already (a
    borrowed copy of its variant and seed does not count: the trained run replaces it).

    Raises:
        ValueError: ``part`` lacks the job's run, holds another configuration than
            ``profile``'s, or other data than the stored results.
    """
    trained = read_results(part)
    if _run_of(job, trained) is None:
        raise ValueError(f"{part} holds no run of {job.variant!r}, seed {job.seed}")
    if with_defaults(trained["profile_config"]) != with_defaults(stored_config(profile)):
        raise ValueError(f"{part} was trained with another configuration than "
                         f"{configuration_name(profile.name, *departures(stored_config(profile)))}")
    out = stored_path(job.experiment, profile)
    stored = out.is_file()
    held = _run_of(job, read_results(out)) if stored else None
    if held is not None and "borrowed_from" not in held:
        return False
    merge_results(job.experiment, [out, part] if stored else [part], out,
                  variant_definitions(EXPERIMENTS[job.experiment]))
    return True


def refresh_borrowers(name: str | None, profile: Profile, seeds=SEEDS,
                      require_data: bool = True,
                      precision: str = REFERENCE_PRECISION) -> list[str]:
    """Copy the stored runs of ``name`` trained at ``precision`` into the stored results of
    every experiment that borrows from it (``experiment run BORROWER --borrowed-only
    --precision PRECISION``); ``None``: into every experiment that borrows from one whose
    results are stored, each once. Returns the borrowers' names.

    Raises:
        DataNotFoundError: no CamVid when ``require_data`` (the results name their data).
    """
    def lends(source: str) -> bool:
        return source == name if name is not None else stored_path(source, profile).is_file()

    borrowers = [e.name for e in EXPERIMENTS.values()
                 if any(lends(source) for source, _ in e.borrowed.values())]
    for borrower in borrowers:
        run_experiment(borrower, profile, list(seeds), stored_path(borrower, profile),
                       require_data=require_data or None, borrowed_only=True,
                       precision=precision)
    return borrowers


def configuration_dir(work_dir: Path, profile: Profile) -> Path:
    """The folder of ``work_dir`` that holds the jobs of ``profile``'s configuration
    (``store.configuration_name``, e.g. ``cpu-mobilenet_v2-imagenet-3000steps``)."""
    return Path(work_dir) / configuration_name(profile.name, *departures(stored_config(profile)))


def is_trained(job: Job, folder: Path) -> bool:
    """Whether ``job``'s run is in its results file in ``folder`` (``configuration_dir``),
    waiting to be merged."""
    part = folder / f"{job.slug}.json"
    return part.is_file() and _run_of(job, read_results(part)) is not None


def saved_checkpoints(job: Job, folder: Path) -> list[Path]:
    """``job``'s checkpoint in ``folder`` (``configuration_dir``), on CamVid or synthetic
    scenes: empty for a job not begun or already stored."""
    return list((folder / "checkpoints").glob(f"*/{job.slug}.pt"))


def job_progress(job: Job, folder: Path) -> str:
    """How far a missing ``job`` got in ``folder`` (``configuration_dir``), for
    ``experiment queue --list``: ``"trained, not merged yet"``, ``"checkpoint at step N"``
    (the step its next run resumes from), or ``""`` for a job not begun.

    An unreadable checkpoint is named, not raised: the listing goes on.
    """
    if is_trained(job, folder):
        return "trained, not merged yet"
    steps = []
    for path in saved_checkpoints(job, folder):
        try:
            steps.append(load_checkpoint(path)["step"])
        except (ValueError, OSError, KeyError):
            return f"unreadable checkpoint {path}"
    return f"checkpoint at step {max(steps)}" if steps else ""


def run_queue(jobs: list[Job], profile: Profile, work_dir: Path, workers: int = 2,
              threads: int = 1, require_data: bool = True, poll_seconds: float = 5.0,
              say=print, precision: str = REFERENCE_PRECISION) -> dict[Job, int]:
    """Train ``jobs`` ``workers`` at a time, each in its own process with ``threads`` threads,
    and merge each finished run into the stored results (``merge_part``), then into the
    experiments that borrow it (``refresh_borrowers``).

    Each job works in ``work_dir/CONFIGURATION`` (``configuration_name``, e.g.
    ``cpu-mobilenet_v2-imagenet-3000steps``), so that no file serves another configuration: it
    writes ``SLUG.json``, its output to ``SLUG.log`` and its checkpoint to ``checkpoints/``
    every 100 steps (``run_checkpoint``). A job whose results file already holds its run (a
    queue stopped between a run and its merge) is merged first, without training again, and
    its checkpoint removed; the jobs with a checkpoint come next. The merges happen in this
    process, one at a time. Interrupted (an exception, Ctrl-C, ``SIGTERM`` to ``experiment
    queue``), it stops the runs in flight, which the next queue resumes from their checkpoints.
    Before anything, it copies the stored runs of every experiment others borrow from into
    the borrowers (``refresh_borrowers``), in case a queue stopped between a merge and its copy.

    Args:
        jobs: in the order to start them (e.g. ``pending_jobs(footing_jobs(), profile)``).
        profile: the configuration every job trains (e.g. ``footing_profile``).
        workers: how many jobs train at once.
        threads: ``OMP_NUM_THREADS`` of each job.
        say: called with one line per started (``start``, or ``resume`` from a checkpoint)
            and finished job.
        precision: the autocast precision of every job (``REFERENCE_PRECISION``).

    Returns:
        job -> the exit status of its process (0: trained and merged).

    Raises:
        ValueError: ``workers`` or ``threads`` below 1, an unknown ``precision``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be at least 1, got {workers} and {threads}")
    work_dir = configuration_dir(work_dir, profile)
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = work_dir / "checkpoints"
    package_root = str(Path(fusionlab.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TQDM_DISABLE": "1",  # the queue reports each run; a run's log stays short
           # the children import this very package, wherever they start
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                       os.environ.get("PYTHONPATH")]))}

    seeds = sorted(set(SEEDS) | {job.seed for job in jobs})

    # the copies a queue stopped between a merge and its copy did not make
    refresh_borrowers(None, profile, seeds, require_data, precision)
    # the runs trained already are merged first, the runs begun resume next, the rest start
    # in the order given
    todo = sorted(jobs, key=lambda job: (not is_trained(job, work_dir),
                                         not saved_checkpoints(job, work_dir)))
    running, status = {}, {}
    name = "{0.experiment} | {0.variant} | seed {0.seed}".format

    def finish(job: Job, code: int, seconds: float | None, resumed: bool = False) -> None:
        # seconds: this queue's wall time of the run (None: trained by an earlier queue); a
        # resumed run's earlier part is in its stored train_seconds, not here
        part = work_dir / f"{job.slug}.json"
        if code == 0:
            try:
                merged = merge_part(job, part, profile)
                refresh_borrowers(job.experiment, profile, seeds, require_data, precision)
            except ValueError as err:  # a conflicting results file: said, and the part kept
                say(f"NOT MERGED {name(job)}: {err}")
                status[job] = -1
                return
            # left by a run stopped after it was stored
            for path in saved_checkpoints(job, work_dir):
                path.unlink()
            run = _run_of(job, read_results(part))
            minutes = None if seconds is None else f"{seconds / 60:.0f} min"
            when = ("trained earlier" if minutes is None else
                    f"resumed, {minutes} in this queue" if resumed else f"in {minutes}")
            say(f"done {name(job)}: mIoU {100 * run['miou']:.1f} ({when})"
                + ("" if merged else ", already stored"))
        else:
            say(f"FAILED {name(job)}: exit {code}, see {work_dir / (job.slug + '.log')}")
        status[job] = code

    def start_and_poll() -> None:
        while todo and len(running) < workers:
            job = todo.pop(0)
            part = work_dir / f"{job.slug}.json"
            if is_trained(job, work_dir):
                finish(job, 0, None)
                continue
            log = open(work_dir / f"{job.slug}.log", "w")
            command = job_command(job, profile, part, require_data, checkpoints, precision)
            log.write(" ".join(command) + "\n")
            log.flush()
            resumed = bool(saved_checkpoints(job, work_dir))
            running[job] = (subprocess.Popen(command, env=env, stdout=log,
                                             stderr=subprocess.STDOUT), log, time.time(), resumed)
            say(("resume " if resumed else "start ") + name(job))
        time.sleep(poll_seconds if running else 0)
        for job, (process, log, started, resumed) in list(running.items()):
            if process.poll() is not None:
                log.close()
                del running[job]
                finish(job, process.returncode, time.time() - started, resumed)

    try:
        while todo or running:
            start_and_poll()
    finally:  # interrupted: the runs in flight stop too, so that none trains twice later
        for process, log, _, _ in running.values():
            process.terminate()
            process.wait()
            log.close()
    return status
