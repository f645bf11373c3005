"""The command line of fusionlab: train a model, evaluate a checkpoint, benchmark a model, run
the book's experiments.

Examples:

    python -m fusionlab train --model fpn --profile cpu --checkpoint runs/fpn.pt
    python -m fusionlab evaluate --model fpn --profile cpu --checkpoint runs/fpn.pt
    python -m fusionlab train --model exfuse --modules ss lr seb dap --profile cpu
    python -m fusionlab bench --model unet --modules levels=c3,c4,c5 --profile cpu
    python -m fusionlab bench --model fpn --training --profile cpu
    python -m fusionlab train --model fpn --encoder mobilenet_v2-imagenet --profile cpu
    python -m fusionlab experiment run fusion-levels --profile cpu --seeds 0 1 2

Models and their options come from ``fusionlab.experiments.MODELS``, the same table the
experiments use (``--list-models`` prints it); ``--modules`` passes options: ``name`` switches
one on, ``name=value`` sets it, ``name=a,b`` gives a list (one value is a list of one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from fusionlab import __version__, distributed
from fusionlab.arguments import positive_int
from fusionlab.bench import (count_flops, count_parameters, forward_latency, training_memory,
                             training_speed)
from fusionlab.datasets import DataNotFoundError, SyntheticScenes
from fusionlab.datasets.camvid import holds_camvid
from fusionlab.experiments import (ENCODERS, MODELS, BuildContext, build_model, get_profile,
                                   load_data, parse_options, train_config, with_encoder)
from fusionlab.experiments.cli import main as experiments_main
from fusionlab.io import atomic_write
from fusionlab.checkpoints import apply_weights, check_checkpoint_path, load_checkpoint
from fusionlab.evaluation import evaluate
from fusionlab.speed import resolve_device
from fusionlab.train import check_resumable, seed_everything, train
from fusionlab.weights import WeightsNotFoundError


class _ListModels(argparse.Action):
    """``--list-models`` on its own or after ``train``, ``evaluate`` or ``bench``: print the
    models and their options, then exit."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="list the models and their options, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(_models_help())
        parser.exit()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(MODELS), default="fpn",
                        help="the model (default: fpn; --list-models lists them)")
    parser.add_argument("--list-models", action=_ListModels)
    parser.add_argument("--modules", nargs="+", default=[], metavar="OPTION",
                        help="model options: NAME or NAME=VALUE, e.g. ss lr dap=conv3x3 "
                             "levels=c3,c4,c5 (--list-models lists them)")
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default=None,
                        help="default: $FUSIONLAB_PROFILE, else gpu with CUDA, else cpu")
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default=None,
                        help="default: the profile's (resnet); "
                             + "; ".join(f"{k}: {v}" for k, v in ENCODERS.items()))


def _run_options(parser: argparse.ArgumentParser) -> None:
    """What a command that reads data takes besides the model."""
    _common(parser)
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="a folder holding camvid/ (same meaning as FUSIONLAB_DATA, but "
                             "used as given: no fallback to synthetic scenes)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--require-data", action="store_true",
                        help="fail when CamVid cannot be had instead of falling back to "
                             "synthetic scenes (same as FUSIONLAB_REQUIRE_DATA=1)")


def _models_help() -> str:
    lines = []
    for name, spec in MODELS.items():
        lines.append(f"{name}: {spec.summary}")
        lines += [f"    {opt}: {text}" for opt, text in spec.options.items()]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fusionlab",
                                     description=__doc__.replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"fusionlab {__version__} (torch {torch.__version__})")
    parser.add_argument("--list-models", action=_ListModels)
    sub = parser.add_subparsers(dest="command")
    p_train = sub.add_parser("train", help="train a model and evaluate it on the validation set")
    _run_options(p_train)
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--steps", type=positive_int, default=None, help="override the profile")
    p_train.add_argument("--checkpoint", default=None,
                         help="save to / resume from this file; the run's configuration and "
                              "metrics log are written beside it (NAME.config.json, "
                              "NAME.log.jsonl)")
    p_eval = sub.add_parser("evaluate", help="evaluate a checkpoint on the validation set")
    _run_options(p_eval)
    p_eval.add_argument("--checkpoint", required=True)
    p_bench = sub.add_parser("bench", help="parameters, FLOPs, forward latency (fp32, bf16) and "
                                           "training memory on the CPU; "
                                           "with --training, ms per training step")
    _common(p_bench)
    p_bench.add_argument("--training", action="store_true",
                         help="time training steps: fp32, the automatic speed mode, a bare loop")
    p_bench.add_argument("--steps", type=positive_int, default=20, help="timed steps per mode")
    sub.add_parser("experiment", help="run a named experiment (python -m fusionlab experiment "
                                      "--help)")
    return parser


def _bench(parser, args, options: dict, profile) -> None:
    # a small synthetic training set for heads fitted to labels: costs do not depend on it
    context = BuildContext(11, profile, SyntheticScenes(16, profile.size))
    try:
        model = build_model(args.model, context, **options)
    except (ValueError, TypeError, WeightsNotFoundError) as err:  # TypeError: a wrong type
        parser.exit(2, f"error: {err}\n")
    report = {"model": args.model, "options": options, "size": profile.size,
              "params": count_parameters(model),
              "gflops": count_flops(model, profile.size) / 1e9}
    if args.training:
        report["training"] = training_speed(lambda: build_model(args.model, context, **options),
                                            profile.batch_size, profile.size, 11,
                                            steps=args.steps)
    else:
        report["latency"] = {precision: forward_latency(model, profile.size, precision=precision)
                             for precision in ("fp32", "bf16")}
        report["training_memory"] = training_memory(model, profile.batch_size, profile.size, 11)
    print(json.dumps(report, indent=1))


def _checkpoint_source(checkpoint: str) -> str:
    """The checkpoint, for an error, with the run record that says how it was trained."""
    config, _ = run_record_paths(checkpoint)
    return f"checkpoint {checkpoint}" + (
        f" (trained by the command in {config})" if config.is_file() else "")


def run_record_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    """The files a ``train`` run writes beside its checkpoint ``NAME.pt``: the resolved
    configuration ``NAME.config.json`` and the metrics log ``NAME.log.jsonl``."""
    checkpoint = Path(checkpoint)
    stem = checkpoint.with_suffix("") if checkpoint.suffix else checkpoint
    return Path(f"{stem}.config.json"), Path(f"{stem}.log.jsonl")


def _write_run_record(argv: list[str], args, options: dict, profile, cfg, data, result) -> None:
    """The configuration and the metrics log of a ``train`` run, beside its checkpoint, so that
    it can be inspected and repeated: one JSON line per logging window, then the validation
    metrics."""
    config_path, log_path = run_record_paths(args.checkpoint)
    record = {"command": "python -m fusionlab " + " ".join(argv), "model": args.model,
              "options": options, "seed": args.seed, "profile": dataclasses.asdict(profile),
              "train_config": dataclasses.asdict(cfg), "data": data.source,
              "speed": result.speed, "commits": result.commits, "fusionlab": __version__,
              "torch": torch.__version__}
    with atomic_write(config_path, "w") as f:
        json.dump(json.loads(json.dumps(record, default=str)), f, indent=1)
    metrics = {k: v for k, v in result.metrics.items() if k in (
        "miou", "iou", "pixel_accuracy", "boundary_f", "eval_size")}
    with atomic_write(log_path, "w") as f:
        for entry in result.history:
            f.write(json.dumps(entry) + "\n")
        f.write(json.dumps({"step": cfg.steps, "train_seconds": result.train_seconds,
                            "val": json.loads(json.dumps(metrics, default=float))}) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run the command; errors in the arguments, a missing or foreign
    checkpoint (checked before any data is read and, for a checkpoint ``train`` resumes, before
    training), data or weights exit with one line naming what was wrong (exit status 2).
    ``evaluate`` says on stderr when the checkpoint was saved before its training finished."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["experiment"]:
        return experiments_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("a command is required: train, evaluate, bench or experiment")
    try:
        options = parse_options(args.modules)
        device = resolve_device(args.device) if args.command != "bench" else None
        profile = with_encoder(get_profile(args.profile), args.encoder)  # $FUSIONLAB_PROFILE
    except ValueError as err:  # one line: the whole program's usage would not help here
        parser.exit(2, f"error: {err}\n")
    if args.command == "bench":
        return _bench(parser, args, options, profile)
    checkpoint = None
    try:  # the checkpoint is checked before any data is read
        if args.command == "evaluate":
            checkpoint = load_checkpoint(args.checkpoint)
        elif args.checkpoint is not None:
            check_checkpoint_path(args.checkpoint)
            if Path(args.checkpoint).is_file():  # a run to resume
                checkpoint = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    if args.command == "train" and args.checkpoint is None and distributed.launched_main():
        print("no --checkpoint: the trained weights will not be saved", file=sys.stderr)
    if args.command == "evaluate" and distributed.launched_main():
        step, steps = checkpoint.get("step"), checkpoint.get("config", {}).get("steps")
        if step is not None and steps is not None and step < steps:  # saved mid-run
            print(f"note: {args.checkpoint} was saved at step {step} of {steps}: its training "
                  "has not finished (train with the same --checkpoint resumes it)",
                  file=sys.stderr)
    try:
        data = load_data(profile, root=None if args.data is None else Path(args.data) / "camvid",
                         require=args.require_data or None)
    except DataNotFoundError as err:
        where = f"--data {args.data}: " if args.data else ""
        itself = (f"\n{args.data} holds CamVid itself: --data names the folder that holds it "
                  f"as camvid/, as FUSIONLAB_DATA does" if args.data is not None
                  and holds_camvid(Path(args.data)) else "")
        parser.exit(2, f"error: {where}{err}{itself}\n")
    if data.is_fallback:
        print(data.banner(), file=sys.stderr)
    seed_everything(getattr(args, "seed", 0))
    try:
        model = build_model(args.model, BuildContext(len(data.classes), profile, data.train),
                            **options)
    except (ValueError, TypeError, WeightsNotFoundError) as err:  # TypeError: a wrong type
        parser.exit(2, f"error: {err}\n")
    if args.command == "train":
        overrides = {"checkpoint": args.checkpoint, "device": str(device)}
        if args.steps:
            overrides["steps"] = args.steps
        cfg = train_config(profile, args.seed, **overrides)
        if checkpoint is not None:  # resumes only the same model with the same optimisation
            try:
                check_resumable(model, cfg, checkpoint, _checkpoint_source(args.checkpoint))
            except ValueError as err:
                parser.exit(2, f"error: {err}\n")
            del checkpoint  # train reads it again, onto its device
        result = train(model, data.train, data.val, cfg)
        metrics = result.metrics
        if not distributed.world().is_main:  # under torchrun the first process reports
            return
        if args.checkpoint:
            _write_run_record(argv, args, options, profile, cfg, data, result)
        print(f"trained {result.train_seconds:.0f} s")
    else:
        try:
            apply_weights(model.to(device), checkpoint["model"],
                          _checkpoint_source(args.checkpoint))
        except ValueError as err:
            parser.exit(2, f"error: {err}\n")
        metrics = evaluate(model, data.val, device=device)
        if not distributed.world().is_main:
            return
    print(f"{data.source} val: mIoU {metrics['miou']:.3f}, pixel accuracy "
          f"{metrics['pixel_accuracy']:.3f}, boundary F {metrics['boundary_f']:.3f} "
          f"(scored at {metrics['eval_size'][0]} x {metrics['eval_size'][1]})")
    for name, iou in zip(data.classes, metrics["iou"]):
        print(f"  {name:11s} {iou:.3f}")


if __name__ == "__main__":
    main()
