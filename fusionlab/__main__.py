"""Command line: ``python -m fusionlab {train,evaluate,bench,experiment} ...``.

Examples::

    python -m fusionlab train --model fpn --profile cpu --checkpoint runs/fpn.pt
    python -m fusionlab evaluate --model fpn --profile cpu --checkpoint runs/fpn.pt
    python -m fusionlab bench --model unet --levels c3 c4 c5 --profile cpu
    python -m fusionlab bench --model exfuse --modules ss seb --profile cpu
    python -m fusionlab experiment run fusion-levels --profile cpu --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys

from fusionlab.bench import count_flops, count_parameters, forward_latency
from fusionlab.encoders import LEVELS
from fusionlab.experiments import build_encoder, get_profile, load_data, train_config
from fusionlab.experiments import main as experiments_main
from fusionlab.models import FCN, FPN, GCN, ExFuse, UNet
from fusionlab.train import evaluate, load_checkpoint, seed_everything, train

MODELS = {"fcn": FCN, "fpn": FPN, "unet": UNet, "gcn": GCN, "exfuse": ExFuse}
EXFUSE_MODULES = ("lr", "ss", "seb", "ecre", "dap")


def build_model(name: str, levels, profile, num_classes: int, modules=EXFUSE_MODULES):
    """The model named on the command line, on the profile's encoder. ``levels`` is used by
    FPN and UNet only; ``modules`` (a subset of ``EXFUSE_MODULES``) by ExFuse only."""
    encoder = build_encoder(profile)
    if name == "fcn":
        return FCN(num_classes, encoder, profile.channels)
    if name == "gcn":
        return GCN(num_classes, encoder)
    if name == "exfuse":
        return ExFuse(num_classes, encoder, **{m: True for m in modules})
    return MODELS[name](num_classes, encoder, levels, profile.channels)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(MODELS), default="fpn")
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS),
                        help="encoder levels fused (FPN and UNet)")
    parser.add_argument("--modules", nargs="*", choices=EXFUSE_MODULES,
                        default=list(EXFUSE_MODULES), help="ExFuse modules switched on")
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default=None,
                        help="default: $FUSIONLAB_PROFILE, else gpu with CUDA, else cpu")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["experiment"]:
        return experiments_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m fusionlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train a model on CamVid and evaluate on val")
    _common(p_train)
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--steps", type=int, default=None, help="override the profile")
    p_train.add_argument("--checkpoint", default=None, help="save to / resume from this file")
    p_eval = sub.add_parser("evaluate", help="evaluate a checkpoint on CamVid val")
    _common(p_eval)
    p_eval.add_argument("--checkpoint", required=True)
    p_bench = sub.add_parser("bench", help="parameters, FLOPs and forward latency")
    _common(p_bench)
    sub.add_parser("experiment", help="run a named experiment (see fusionlab.experiments)")
    args = parser.parse_args(argv)

    profile = get_profile(args.profile)
    if args.command == "bench":
        model = build_model(args.model, args.levels, profile, 11, args.modules)
        print(json.dumps({"model": args.model, "levels": args.levels, "size": profile.size,
                          "params": count_parameters(model),
                          "gflops": count_flops(model, profile.size) / 1e9,
                          "latency": forward_latency(model, profile.size)}, indent=1))
        return
    data = load_data(profile)
    if data.is_fallback:
        print(data.banner(), file=sys.stderr)
    seed_everything(getattr(args, "seed", 0))
    model = build_model(args.model, args.levels, profile, len(data.classes),
                        args.modules)
    if args.command == "train":
        overrides = {"checkpoint": args.checkpoint}
        if args.steps:
            overrides["steps"] = args.steps
        result = train(model, data.train, data.val, train_config(profile, args.seed, **overrides))
        metrics = result.metrics
        print(f"trained {result.train_seconds:.0f} s")
    else:
        model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
        metrics = evaluate(model, data.val)
    print(f"{data.source} val: mIoU {metrics['miou']:.3f}, pixel accuracy "
          f"{metrics['pixel_accuracy']:.3f}, boundary F {metrics['boundary_f']:.3f}")
    for name, iou in zip(data.classes, metrics["iou"]):
        print(f"  {name:11s} {iou:.3f}")


if __name__ == "__main__":
    main()
