"""Command line: ``python -m fusionlab {train,evaluate,bench,experiment} ...``.

Examples::

    python -m fusionlab train --model fpn --profile cpu --checkpoint runs/fpn.pt
    python -m fusionlab evaluate --model fpn --profile cpu --checkpoint runs/fpn.pt
    python -m fusionlab train --model exfuse --modules ss lr seb dap --profile cpu
    python -m fusionlab bench --model unet --modules levels=c3,c4,c5 --profile cpu
    python -m fusionlab bench --model fpn --training --profile cpu
    python -m fusionlab train --model fpn --encoder mobilenet_v2-imagenet --profile cpu
    python -m fusionlab experiment run fusion-levels --profile cpu --seeds 0 1 2

Models and their options come from ``fusionlab.experiments.MODELS``, the same table the
experiments use; ``--modules`` passes options: ``name`` switches one on, ``name=value`` sets it.
"""

from __future__ import annotations

import argparse
import json
import sys

from fusionlab.bench import count_flops, count_parameters, forward_latency, training_speed
from fusionlab.datasets import SyntheticScenes
from fusionlab.experiments import (ENCODERS, MODELS, BuildContext, build_model, get_profile,
                                   load_data, parse_options, train_config, with_encoder)
from fusionlab.experiments.cli import main as experiments_main
from fusionlab.train import evaluate, load_model_weights, seed_everything, train
from fusionlab.weights import WeightsNotFoundError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(MODELS), default="fpn",
                        help="; ".join(f"{k}: {m.summary}" for k, m in MODELS.items()))
    parser.add_argument("--modules", nargs="*", default=[], metavar="OPTION",
                        help="model options: NAME or NAME=VALUE, e.g. ss lr dap=conv3x3 "
                             "levels=c3,c4,c5 (see --list-models)")
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default=None,
                        help="default: $FUSIONLAB_PROFILE, else gpu with CUDA, else cpu")
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default=None,
                        help="default: the profile's (resnet); "
                             + "; ".join(f"{k}: {v}" for k, v in ENCODERS.items()))


def _models_help() -> str:
    lines = []
    for name, spec in MODELS.items():
        lines.append(f"{name}: {spec.summary}")
        lines += [f"    {opt}: {text}" for opt, text in spec.options.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run the command; errors in the arguments exit with a message."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["experiment"]:
        return experiments_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m fusionlab", description=__doc__,
                                     epilog="models and options:\n" + _models_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train a model and evaluate it on the validation set")
    _common(p_train)
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--steps", type=_positive, default=None, help="override the profile")
    p_train.add_argument("--checkpoint", default=None, help="save to / resume from this file")
    p_eval = sub.add_parser("evaluate", help="evaluate a checkpoint on the validation set")
    _common(p_eval)
    p_eval.add_argument("--checkpoint", required=True)
    p_bench = sub.add_parser("bench", help="parameters, FLOPs and forward latency; with "
                                           "--training, ms per training step")
    _common(p_bench)
    p_bench.add_argument("--training", action="store_true",
                         help="time training steps: fp32, the automatic speed mode, a bare loop")
    p_bench.add_argument("--steps", type=_positive, default=20, help="timed steps per mode")
    sub.add_parser("experiment", help="run a named experiment (python -m fusionlab experiment "
                                      "--help)")
    args = parser.parse_args(argv)
    try:
        options = parse_options(args.modules)
    except ValueError as err:
        parser.error(str(err))

    profile = with_encoder(get_profile(args.profile), args.encoder)
    if args.command == "bench":
        # a small synthetic training set for heads fitted to labels: costs do not depend on it
        context = BuildContext(11, profile, SyntheticScenes(16, profile.size))
        try:
            model = build_model(args.model, context, **options)
        except (ValueError, WeightsNotFoundError) as err:
            parser.error(str(err))
        report = {"model": args.model, "options": options, "size": profile.size,
                  "params": count_parameters(model),
                  "gflops": count_flops(model, profile.size) / 1e9}
        if args.training:
            report["training"] = training_speed(lambda: build_model(args.model, context,
                                                                    **options),
                                                profile.batch_size, profile.size, 11,
                                                steps=args.steps)
        else:
            report["latency"] = forward_latency(model, profile.size)
        print(json.dumps(report, indent=1))
        return
    data = load_data(profile)
    if data.is_fallback:
        print(data.banner(), file=sys.stderr)
    seed_everything(getattr(args, "seed", 0))
    try:
        model = build_model(args.model, BuildContext(len(data.classes), profile, data.train),
                            **options)
    except (ValueError, WeightsNotFoundError) as err:
        parser.error(str(err))
    if args.command == "train":
        overrides = {"checkpoint": args.checkpoint}
        if args.steps:
            overrides["steps"] = args.steps
        result = train(model, data.train, data.val, train_config(profile, args.seed, **overrides))
        metrics = result.metrics
        print(f"trained {result.train_seconds:.0f} s")
    else:
        load_model_weights(model, args.checkpoint)
        metrics = evaluate(model, data.val)
    print(f"{data.source} val: mIoU {metrics['miou']:.3f}, pixel accuracy "
          f"{metrics['pixel_accuracy']:.3f}, boundary F {metrics['boundary_f']:.3f} "
          f"(scored at {metrics['eval_size'][0]} x {metrics['eval_size'][1]})")
    for name, iou in zip(data.classes, metrics["iou"]):
        print(f"  {name:11s} {iou:.3f}")


if __name__ == "__main__":
    main()
