"""Command line of the experiments: ``python -m fusionlab experiment
{run,merge,show,list,estimate,queue} ...``."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path

from fusionlab import distributed
from fusionlab.arguments import positive_float, positive_int
from fusionlab.experiments.ablations import EXPERIMENTS
from fusionlab.experiments.curves import footing_steps
from fusionlab.experiments.estimate import ASSUMED_CORES, ASSUMED_TFLOPS, estimate_table
from fusionlab.experiments.profiles import (ENCODERS, PROFILES, Profile, get_profile,
                                            with_encoder)
from fusionlab.experiments.queue import (REFERENCE_PRECISION, SEEDS, configuration_dir,
                                         footing_jobs, footing_profile, job_progress,
                                         pending_jobs, run_queue)
from fusionlab.experiments.runner import get_experiment, run_experiment, variant_definitions
from fusionlab.experiments.report import gains_table, provenance_line, results_table
from fusionlab.experiments.stats import shared_seeds
from fusionlab.experiments.store import (config_differences, departures, merge_results,
                                         stored_config, stored_configurations,
                                         stored_results)
from fusionlab.speed import PRECISIONS
from fusionlab.train import TrainConfig


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run, merge, show, list, estimate or queue experiments.

    Raises:
        SystemExit: bad arguments (argparse's message), or an error of the runner or the store
            (printed as one line).
    """
    parser = argparse.ArgumentParser(prog="python -m fusionlab experiment",
                                     description="Run a named experiment and store its results "
                                                 "(fusionlab/results/NAME-PROFILE.json), show "
                                                 "them, or train the reference runs still "
                                                 "missing.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every variant for every seed")
    run.add_argument("name", choices=sorted(EXPERIMENTS), help="the experiment (see list)")
    run.add_argument("--profile", choices=sorted(PROFILES), default=None,
                     help="default: $FUSIONLAB_PROFILE, else gpu with CUDA, else cpu")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                     help="default: 0 1 2")
    run.add_argument("--variants", nargs="+", default=None, help="a subset of the variants")
    run.add_argument("--out", type=Path, default=None, help="results file (default: the book's)")
    run.add_argument("--steps", type=positive_int, default=None,
                     help="train this many steps instead of the profile's (stored apart, by "
                          "default in fusionlab/results/NAME-PROFILE-STEPSsteps.json)")
    run.add_argument("--encoder", choices=sorted(ENCODERS), default=None,
                     help="train on this encoder instead of the profile's (stored apart, by "
                          "default in fusionlab/results/NAME-PROFILE-ENCODER.json): "
                          + "; ".join(f"{k}: {v}" for k, v in ENCODERS.items()))
    run.add_argument("--require-data", action="store_true",
                     help="fail when CamVid cannot be had instead of falling back to synthetic "
                          "scenes (same as FUSIONLAB_REQUIRE_DATA=1)")
    run.add_argument("--checkpoints", type=Path, default=None, metavar="DIR",
                     help=f"save each run's training state in DIR every "
                          f"{TrainConfig.checkpoint_every} steps; an "
                          "interrupted run resumes from it when the command runs again")
    run.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="autocast precision of training (default: auto, the fastest this "
                          "machine runs safely; each run stores the one it used)")
    run.add_argument("--borrowed-only", action="store_true",
                     help="copy the runs of variants borrowed from other experiments' stored "
                          "results (chapter 6) and train nothing")
    merge = sub.add_parser("merge", help="merge result files of parallel runs")
    merge.add_argument("name", choices=sorted(EXPERIMENTS), help="the experiment of every file")
    merge.add_argument("files", type=Path, nargs="+",
                       help="results files of one profile configuration and one data source")
    merge.add_argument("--out", type=Path, required=True,
                       help="the merged file (may be one of FILES, e.g. the stored results)")
    show = sub.add_parser("show", help="print an experiment's stored results and its gains "
                          "paired by seed (Markdown)")
    show.add_argument("name", choices=sorted(EXPERIMENTS), help="the experiment (see list)")
    show.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                      help="default: cpu, the profile of the book's reference results (not "
                           "$FUSIONLAB_PROFILE: a run of another profile is shown with its "
                           "--profile)")
    where = show.add_mutually_exclusive_group()
    where.add_argument("--footing", action="store_true",
                       help="the runs on the papers' footing: the ImageNet encoder at the "
                            "reference schedule (what experiment queue trains)")
    where.add_argument("--encoder", choices=sorted(ENCODERS), default=None,
                       help="the runs on this encoder instead of the profile's")
    show.add_argument("--steps", type=positive_int, default=None,
                      help="the runs of this schedule instead of the profile's")
    sub.add_parser("list", help="list the experiments and their variants")
    estimate = sub.add_parser("estimate", help="estimate each chapter's live runs on a GPU (a "
                              "Markdown table)")
    estimate.add_argument("--profile", choices=sorted(PROFILES), default="gpu",
                          help="the profile whose live runs are estimated (default: gpu)")
    estimate.add_argument("--tflops", type=positive_float, default=ASSUMED_TFLOPS,
                          help="the GPU's sustained training throughput in TFLOP/s (default: "
                               "%(default)s, assumed for Colab's T4)")
    estimate.add_argument("--cores", type=positive_int, default=ASSUMED_CORES,
                          help="CPU cores preparing the images (default: %(default)s)")
    queue = sub.add_parser("queue", help="train the reference runs the papers' footing still "
                           "lacks (ImageNet encoder), a few processes at a time, merging each")
    queue.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                       help="default: cpu, the profile of the book's reference results")
    queue.add_argument("--steps", type=positive_int, default=None,
                       help="training steps per run (default: the reference schedule settled "
                            "by chapter 1's learning curve)")
    queue.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                       help="default: " + " ".join(map(str, SEEDS)))
    queue.add_argument("--experiments", nargs="+", choices=sorted(EXPERIMENTS), default=None,
                       help="a subset of the experiments (default: all)")
    queue.add_argument("--workers", type=positive_int, default=2,
                       help="runs at once (default: 2)")
    queue.add_argument("--threads", type=positive_int, default=1,
                       help="threads per run on a CPU (default: 1)")
    queue.add_argument("--work-dir", type=Path, default=Path("reference-runs"),
                       help="each run's results file, log and checkpoints, in a folder per "
                            "configuration (default: ./reference-runs)")
    queue.add_argument("--precision", choices=PRECISIONS, default=REFERENCE_PRECISION,
                       help="autocast precision of every run (default: %(default)s, which "
                            "every machine runs: paired runs must not differ in precision)")
    queue.add_argument("--list", action="store_true",
                       help="print the runs still missing, with how far each got in "
                            "--work-dir, and train nothing")
    args = parser.parse_args(argv)
    try:
        if args.command == "queue":
            queue_command(args, parser)
            return
        if args.command == "show":
            show_command(args, parser)
            return
        if args.command == "list":
            for name, e in EXPERIMENTS.items():
                print(f"{name}: {e.title}")
                for label, v in e.variants.items():
                    print(f"  {label!r}: {v.model} {v.options}")
            return
        if args.command == "estimate":
            print(estimate_table(get_profile(args.profile), args.tflops, args.cores))
            return
        if args.command == "merge":
            results = merge_results(args.name, args.files, args.out,
                                    variant_definitions(get_experiment(args.name)))
        else:
            profile = chosen_profile(args)
            # by default stored apart when --steps or --encoder departs from the profile's
            results = run_experiment(args.name, profile, args.seeds, args.out, args.variants,
                                     require_data=args.require_data or None,
                                     borrowed_only=args.borrowed_only,
                                     checkpoints=args.checkpoints, precision=args.precision)
    except (ValueError, OSError) as err:  # DataNotFoundError, WeightsNotFoundError, a folder
        parser.exit(2, f"error: {err}\n")
    if not distributed.world().is_main:  # one summary, from the first process of torchrun's
        return
    for variant, s in results["summary"].items():
        spread = f" ± {100 * s['miou']['std']:.1f}" if len(s["seeds"]) > 1 else ""
        print(f"{variant:28s} mIoU {100 * s['miou']['mean']:5.1f}{spread}"
              f"  thin {100 * s['thin_iou']['mean']:5.1f}  boundary F "
              f"{100 * s['boundary_f']['mean']:5.1f}  ({len(s['seeds'])} seeds)")


def chosen_profile(args: argparse.Namespace) -> Profile:
    """The profile ``--profile``, ``--steps`` and ``--encoder`` name (``--steps`` is positive:
    argparse checks it)."""
    profile = get_profile(args.profile)
    return with_encoder(dataclasses.replace(profile, steps=args.steps or profile.steps),
                        args.encoder)


def show_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``experiment show``: the provenance, the results table (mean ± std over seeds) and the
    paired gains (the paper's steps and the pretrained comparisons that were run) of one
    experiment's stored results, in Markdown.

    Raises:
        SystemExit: no stored results for that configuration (status 1, naming what to run,
            and ``--footing`` where the papers' footing holds runs), or no reference schedule
            yet for ``--footing`` (status 1); ``--footing`` with ``--steps``,
            ``--steps`` below 1 (status 2).
    """
    experiment = get_experiment(args.name)
    if args.footing:
        if args.steps is not None:
            parser.exit(2, "error: --footing has its own schedule; leave out --steps\n")
        steps = footing_steps(args.profile)
        if steps is None:
            parser.exit(1, f"no reference schedule on the ImageNet encoder for the "
                           f"{args.profile} profile yet: chapter 1's learning curve settles "
                           f"it; see --steps and --encoder\n")
        profile = footing_profile(get_profile(args.profile), steps)
        train = (f"python -m fusionlab experiment queue --profile {args.profile} "
                 f"--experiments {args.name}")
    else:
        profile = chosen_profile(args)
        steps, encoder = departures(stored_config(profile))
        train = " ".join(["python -m fusionlab experiment run", args.name, "--profile",
                          args.profile, *(["--steps", str(steps)] if steps else []),
                          *(["--encoder", encoder] if encoder else [])])
    results = stored_results(args.name, stored_config(profile))
    if results is None:
        parser.exit(1, _stored_hint(args) + f"no stored results of {args.name} for this "
                       f"configuration; train them with: {train}\n")
    pairs = [(p.base, v) for v, p in experiment.paper.items() if p.base]
    pairs += [pair for pair in experiment.pretrained if pair not in pairs]
    pairs = [pair for pair in pairs if shared_seeds(results, *pair)]
    print(f"# {args.name}: {experiment.title}\n\n{provenance_line(results)}\n")
    print(results_table(results))
    print()
    print(gains_table(results, experiment, pairs) if pairs else
          "No paired gain yet: no comparison has both its variants run with one seed.")


def _stored_hint(args: argparse.Namespace) -> str:
    """For ``experiment show`` with no results in the configuration asked for: the command
    that shows each configuration holding runs of the experiment (the papers' footing first,
    the profile's own next), or ``""``. A stored configuration that no ``show`` command
    reaches (another profile than the named ones, or one departing from its profile by more
    than steps and encoder) is left out."""
    commands = []  # (order, the options of experiment show)
    for config in stored_configurations(args.name):
        if config["name"] not in PROFILES:
            continue
        named, footing = get_profile(config["name"]), footing_steps(config["name"])
        steps, encoder = departures(config)
        if footing is not None and not config_differences(
                config, stored_config(footing_profile(named, footing))):
            order, words = 0, ["--footing"]
        elif not config_differences(config, stored_config(with_encoder(
                dataclasses.replace(named, steps=steps or named.steps), encoder))):
            words = [*(["--steps", str(steps)] if steps else []),
                     *(["--encoder", encoder] if encoder else [])]
            order = 2 if words else 1
        else:
            continue
        commands.append((order, " ".join(["--profile", config["name"], *words])))
    if not commands:
        return ""
    return (f"stored results of {args.name} are in other configurations:\n" + "".join(
        f"  python -m fusionlab experiment show {args.name} {words}\n"
        for _, words in sorted(commands, key=lambda c: c[0])))


def queue_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``experiment queue``: list, or train and merge, the footing's missing runs.

    Raises:
        SystemExit: no reference schedule and no ``--steps`` (status 2); a run that failed or
            was not merged (status 1).
    """
    steps = args.steps if args.steps is not None else footing_steps(args.profile)
    if steps is None:
        parser.exit(2, "error: give --steps: chapter 1's learning curve on the ImageNet "
                       "encoder has not settled a reference schedule yet\n")
    profile = footing_profile(get_profile(args.profile), steps)
    jobs = pending_jobs(footing_jobs(args.seeds, args.experiments), profile, args.precision)
    print(f"{len(jobs)} runs missing at {steps} steps on the ImageNet encoder "
          f"({args.profile} profile)")
    if args.list:  # with how far each got in --work-dir (a queue may be training it now)
        folder = configuration_dir(args.work_dir, profile)
        for job in jobs:
            progress = job_progress(job, folder)
            print(f"  {job.experiment} | {job.variant} | seed {job.seed}"
                  + (f" ({progress})" if progress else ""))
        return
    # SIGTERM ends the queue as Ctrl-C does: its runs in flight stop with it
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    status = run_queue(jobs, profile, args.work_dir, args.workers, args.threads,
                       precision=args.precision)
    failed = [job for job, code in status.items() if code != 0]
    if failed:
        parser.exit(1, f"error: {len(failed)} of {len(status)} runs failed or were not merged "
                       "(see the lines above)\n")
