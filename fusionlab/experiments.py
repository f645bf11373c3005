"""Profiles (how much each experiment trains) and the reference-results runner.

One switch, ``FUSIONLAB_PROFILE``, picks the profile: ``smoke`` (seconds, for CI), ``cpu``
(minutes per model on a 2-core machine) or ``gpu`` (Colab; higher resolution, longer, AMP).
Without it: ``gpu`` when CUDA is available, else ``cpu``.

Command line::

    python -m fusionlab.experiments run fusion-levels --profile cpu --seeds 0 1 2

trains every variant of the experiment once per seed and writes
``book/results/fusion-levels-cpu.json``: per-seed metrics, mean and spread, and provenance
(profile, seeds, device, versions, commit, wall time). An interrupted run resumes: finished
(variant, seed) pairs found in the file are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Subset

import fusionlab
from fusionlab.datasets import CamVid, DataNotFoundError, SyntheticScenes
from fusionlab.encoders import ResNetEncoder
from fusionlab.io import atomic_write
from fusionlab.models import FPN, ExFuse, UNet
from fusionlab.models.base import SegmentationModel
from fusionlab.train import TrainConfig, seed_everything, train


@dataclass(frozen=True)
class Profile:
    """How much an experiment trains.

    Attributes:
        name: ``smoke``, ``cpu`` or ``gpu``.
        size: training and evaluation resolution (H, W) in pixels.
        batch_size, steps, lr, optimizer: training schedule (see ``TrainConfig``).
        train_images, val_images: subset sizes (``None``: the whole split).
        blocks, widths: the ``ResNetEncoder`` layout.
        channels: decoder channels.
        num_workers: DataLoader workers.
    """

    name: str
    size: tuple[int, int]
    batch_size: int
    steps: int
    lr: float
    optimizer: str
    train_images: int | None
    val_images: int | None
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    channels: int
    num_workers: int


PROFILES = {
    "smoke": Profile("smoke", (48, 64), 4, 8, 2e-3, "adamw", 16, 8, (2, 2, 2, 2),
                     (16, 32, 64, 128), 32, 0),
    "cpu": Profile("cpu", (120, 160), 8, 1200, 2e-3, "adamw", None, None, (2, 2, 2, 2),
                   (32, 64, 128, 256), 64, 0),
    "gpu": Profile("gpu", (360, 480), 16, 6000, 2e-3, "adamw", None, None, (2, 2, 2, 2),
                   (64, 128, 256, 512), 128, 4),
}


def get_profile(name: str | None = None) -> Profile:
    """The named profile, else ``$FUSIONLAB_PROFILE``, else ``gpu`` with CUDA and ``cpu``
    without.

    Raises:
        ValueError: an unknown profile name.
    """
    name = name or os.environ.get("FUSIONLAB_PROFILE") or (
        "gpu" if torch.cuda.is_available() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {name!r} "
                         "(check FUSIONLAB_PROFILE)")
    return PROFILES[name]


@dataclass
class Data:
    """The train and validation sets of a profile, and where they came from.

    Attributes:
        train, val: datasets returning ``{"image", "mask", "index"}``.
        source: ``"CamVid"`` or ``"SyntheticScenes"``.
        classes: the class names.
        palette: (K, 3) uint8 RGB colour per class.
        note: why the fallback was used (empty for CamVid).
    """

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    source: str
    classes: tuple[str, ...]
    palette: np.ndarray
    note: str = ""

    @property
    def is_fallback(self) -> bool:
        return self.source != "CamVid"

    def class_frequencies(self):
        """Share of labelled pixels per class over the whole training split, (K,)."""
        return getattr(self.train, "dataset", self.train).class_frequencies()

    def banner(self) -> str:
        """A loud notice when the numbers are not CamVid's; empty otherwise."""
        if not self.is_fallback:
            return ""
        line = "!" * 78
        reason = "\n".join(f"!!   {text}" for text in self.note.splitlines())
        return (f"{line}\n!! CamVid is not available: this run uses SyntheticScenes, procedural "
                f"scenes.\n!! Its numbers are NOT CamVid's and are not comparable to the "
                f"papers'.\n!! Why:\n{reason}\n{line}")


def _subset(dataset, n: int | None):
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))


def load_data(profile: Profile, root=None, download: bool | None = None) -> Data:
    """CamVid train/val at the profile's size (train augmented), or SyntheticScenes when CamVid
    cannot be had. ``download`` defaults to ``$FUSIONLAB_DOWNLOAD`` (``1``: allowed)."""
    if download is None:
        download = os.environ.get("FUSIONLAB_DOWNLOAD", "1") != "0"
    try:
        train_set = CamVid("train", profile.size, root=root, augment=True, download=download)
        val_set = CamVid("val", profile.size, root=train_set.root, download=False)
        return Data(_subset(train_set, profile.train_images), _subset(val_set, profile.val_images),
                    "CamVid", CamVid.CLASSES, CamVid.PALETTE)
    except DataNotFoundError as err:
        n_train, n_val = profile.train_images or 367, profile.val_images or 101
        return Data(SyntheticScenes(n_train, profile.size, seed=0, augment=True),
                    SyntheticScenes(n_val, profile.size, seed=1), "SyntheticScenes",
                    SyntheticScenes.CLASSES, SyntheticScenes.PALETTE, note=str(err))


def build_encoder(profile: Profile) -> ResNetEncoder:
    """The profile's ``ResNetEncoder`` (from scratch)."""
    return ResNetEncoder(blocks=profile.blocks, widths=profile.widths)


def train_config(profile: Profile, seed: int = 0, **overrides) -> TrainConfig:
    """The profile's ``TrainConfig`` for one seed; keyword arguments override fields."""
    cfg = TrainConfig(steps=profile.steps, batch_size=profile.batch_size, lr=profile.lr,
                      optimizer=profile.optimizer, num_workers=profile.num_workers, seed=seed)
    return dataclasses.replace(cfg, **overrides)


# -- experiments ----------------------------------------------------------------------------
ModelBuilder = Callable[[int, Profile], SegmentationModel]


def fusion_levels(num_classes: int) -> dict[str, ModelBuilder]:
    """ExFuse's Table 1 on our scale: which levels are fused, for FPN (add) and UNet (concat).

    With one level there is nothing to fuse and FPN and UNet are the same model, so the
    experiment has one ``c5`` variant and three of each fusion type.
    """
    sets = {"c5": ("c5",), "c4-c5": ("c4", "c5"), "c3-c5": ("c3", "c4", "c5"),
            "c2-c5": ("c2", "c3", "c4", "c5")}
    variants: dict[str, ModelBuilder] = {
        "c5": lambda k, p: FPN(k, build_encoder(p), ("c5",), p.channels)}
    for cls in (FPN, UNet):
        for label, levels in list(sets.items())[1:]:
            variants[f"{cls.__name__} {label}"] = (
                lambda k, p, cls=cls, levels=levels: cls(k, build_encoder(p), levels, p.channels))
    return variants


EXFUSE_STEPS = (("GCN", {}), ("+LR", {"lr": True}), ("+SS", {"ss": True}),
                ("+ECRE", {"ecre": "ecre"}), ("+SEB", {"seb": True}), ("+DAP", {"dap": True}))
"""ExFuse's modules added one at a time, in the order of the cumulative ablation."""

ECRE_STUDY = {"LR+SS, deconv+supervision": "deconv+supervision",
              "LR+SS, sub-pixel only": "subpixel"}
"""ExFuse's Table 4 on the GCN+LR+SS model; its baseline is ``+SS`` and its ECRE is ``+ECRE``."""


def exfuse_ablation(num_classes: int) -> dict[str, ModelBuilder]:
    """ExFuse's ablation on our scale: GCN -> +LR -> +SS -> +ECRE -> +SEB -> +DAP, each
    variant keeping the modules before it (Sec. 4, Table 3), and Table 4's two other ECRE
    designs on GCN+LR+SS."""
    variants: dict[str, ModelBuilder] = {}
    flags: dict = {}
    for label, added in EXFUSE_STEPS:
        flags = {**flags, **added}
        variants[label] = lambda k, p, f=flags: ExFuse(k, build_encoder(p), **f)
    for label, design in ECRE_STUDY.items():
        variants[label] = lambda k, p, d=design: ExFuse(k, build_encoder(p), lr=True, ss=True,
                                                        ecre=d)
    return variants


EXPERIMENTS: dict[str, Callable[[int], dict[str, ModelBuilder]]] = {
    "fusion-levels": fusion_levels,
    "exfuse": exfuse_ablation,
}
"""Named experiments for the command line: name -> function(num_classes) -> variants."""


def results_dir() -> Path:
    """``$FUSIONLAB_RESULTS``, else the repository's ``book/results``, else ``./results``."""
    if os.environ.get("FUSIONLAB_RESULTS"):
        return Path(os.environ["FUSIONLAB_RESULTS"])
    repo = Path(__file__).resolve().parents[1] / "book" / "results"
    return repo if repo.is_dir() else Path.cwd() / "results"


def results_path(name: str, profile: str) -> Path:
    """Where the reference results of experiment ``name`` in ``profile`` are stored."""
    return results_dir() / f"{name}-{profile}.json"


def load_results(name: str, profile: str = "cpu") -> dict | None:
    """The stored reference results of an experiment, or ``None`` if there are none."""
    path = results_path(name, profile)
    return json.loads(path.read_text()) if path.is_file() else None


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "fusionlab"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+uncommitted-library-changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def summarise(values: list[float]) -> dict:
    """mean, sample standard deviation (ddof=1; 0 for one value), min and max, NaNs skipped."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1)


def run_experiment(name: str, profile: Profile, seeds: list[int], out: Path | None = None,
                   variants: list[str] | None = None) -> dict:
    """Train every variant of experiment ``name`` once per seed; write and return the results.

    The file is rewritten after each run, so an interrupted experiment resumes where it
    stopped (runs with the same variant, seed and profile are not repeated).

    Raises:
        ValueError: unknown experiment or variant.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {tuple(EXPERIMENTS)}, got {name!r}")
    out = out or results_path(name, profile.name)
    data = load_data(profile)
    if data.is_fallback:
        print(data.banner(), file=sys.stderr)
    builders = EXPERIMENTS[name](len(data.classes))
    chosen = variants or list(builders)
    unknown = [v for v in chosen if v not in builders]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; {name} has {list(builders)}")

    previous = json.loads(out.read_text()) if out.is_file() else {}
    config = json.loads(json.dumps(dataclasses.asdict(profile)))  # as stored in JSON
    same = previous.get("profile_config") == config
    runs = [r for r in previous.get("runs", []) if same]
    wall = previous.get("provenance", {}).get("wall_seconds", 0.0) if same else 0.0
    commit = _git_commit()  # the code that runs is the code at start
    for seed in seeds:  # every variant once before the next seed: early partial results
        for variant in chosen:
            if any(r["variant"] == variant and r["seed"] == seed for r in runs):
                continue
            t0 = time.perf_counter()
            seed_everything(seed)
            model = builders[variant](len(data.classes), profile)
            print(f"[{name}] {variant}, seed {seed}", file=sys.stderr, flush=True)
            result = train(model, data.train, data.val, train_config(profile, seed))
            m = result.metrics
            runs.append({"variant": variant, "seed": seed, "miou": m["miou"], "iou": m["iou"],
                         "boundary_f": m["boundary_f"], "pixel_accuracy": m["pixel_accuracy"],
                         "train_seconds": result.train_seconds,
                         "threads": torch.get_num_threads(),
                         "params": sum(p.numel() for p in model.parameters()),
                         "final_loss": result.history[-1]["loss"]})
            wall += time.perf_counter() - t0
            _write_json(out, _assemble(name, config, data.source, data.classes, list(builders),
                                       runs, wall, commit))
    results = _assemble(name, config, data.source, data.classes, list(builders), runs, wall,
                        commit)
    _write_json(out, results)
    return results


def merge_results(name: str, paths: list[Path], out: Path) -> dict:
    """Merge result files of one experiment run in parallel processes (e.g. one per subset of
    variants) into ``out``: runs are concatenated, the summary recomputed, the wall times
    summed and every distinct commit kept.

    Raises:
        ValueError: files of another experiment or profile configuration, or a (variant, seed)
            pair found in two files.
    """
    parts = [json.loads(Path(p).read_text()) for p in paths]
    first = parts[0]
    if any(p["experiment"] != name or p["profile_config"] != first["profile_config"]
           for p in parts):
        raise ValueError(f"every file must hold experiment {name!r} with one profile "
                         f"configuration: {[str(p) for p in paths]}")
    runs, seen = [], set()
    for part in parts:
        for r in part["runs"]:
            if (r["variant"], r["seed"]) in seen:
                raise ValueError(f"{r['variant']!r}, seed {r['seed']} is in two files")
            seen.add((r["variant"], r["seed"]))
            runs.append(r)
    commits = ", ".join(dict.fromkeys(p["provenance"]["commit"] for p in parts))
    wall = sum(p["provenance"]["wall_seconds"] for p in parts)
    variants = list(EXPERIMENTS[name](len(first["classes"])))
    results = _assemble(name, first["profile_config"], first["data"], first["classes"], variants,
                        runs, wall, commits)
    results["provenance"]["device"] = " / ".join(dict.fromkeys(p["provenance"]["device"]
                                                               for p in parts))
    _write_json(out, results)
    return results


def _assemble(name, profile_config, source, classes, variants, runs, wall, commit) -> dict:
    classes = list(classes)
    thin = [c for c in CamVid.THIN_CLASSES if c in classes]
    summary = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        iou = np.array([r["iou"] for r in mine], dtype=float)  # (seeds, K)
        summary[variant] = {
            "seeds": [r["seed"] for r in mine],
            "miou": summarise([r["miou"] for r in mine]),
            "thin_iou": summarise([thin_iou(classes, thin, r["iou"]) for r in mine]),
            "boundary_f": summarise([r["boundary_f"] for r in mine]),
            "iou_mean": [float(x) for x in np.nanmean(iou, axis=0)],
            "params": mine[0]["params"],
        }
    return {
        "experiment": name, "profile": profile_config["name"],
        "profile_config": profile_config, "data": source,
        "classes": classes, "thin_classes": thin, "summary": summary, "runs": runs,
        "provenance": {
            "seeds": sorted({r["seed"] for r in runs}),
            "device": (torch.cuda.get_device_name() if torch.cuda.is_available()
                       else f"CPU ({platform.processor() or platform.machine()}, "
                            f"{torch.get_num_threads()} threads)"),
            "torch": torch.__version__, "python": platform.python_version(),
            "fusionlab": fusionlab.__version__, "commit": commit,
            "wall_seconds": wall,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": f"python -m fusionlab.experiments run {name} --profile "
                       f"{profile_config['name']} "
                       f"--seeds {' '.join(str(s) for s in sorted({r['seed'] for r in runs}))}",
        },
    }


def thin_iou(classes: list[str], thin_classes: list[str], iou: list[float]) -> float:
    """Mean of the per-class ``iou`` (K,) over ``thin_classes`` (NaN, i.e. absent, skipped)."""
    idx = [classes.index(c) for c in thin_classes]
    return float(np.nanmean(np.array(iou, dtype=float)[idx]))


def paired_gain(results: dict, base: str, variant: str, metric: str = "miou") -> dict:
    """The gain of ``variant`` over ``base``, paired by seed (same seed, same data order).

    Returns:
        ``summarise`` of the per-seed differences (variant - base), plus ``"gains"`` (the list
        of differences, seed order) and ``"same_sign"`` (every seed agrees on the sign).

    Raises:
        ValueError: a variant missing from the results, or no seed run for both.
    """
    value = ((lambda r: thin_iou(results["classes"], results["thin_classes"], r["iou"]))
             if metric == "thin_iou" else (lambda r: r[metric]))
    by_seed = {}
    for name in (base, variant):
        runs = {r["seed"]: value(r) for r in results["runs"] if r["variant"] == name}
        if not runs:
            raise ValueError(f"no runs of {name!r} in the results of {results['experiment']!r}")
        by_seed[name] = runs
    seeds = sorted(set(by_seed[base]) & set(by_seed[variant]))
    if not seeds:
        raise ValueError(f"{base!r} and {variant!r} share no seed")
    gains = [by_seed[variant][s] - by_seed[base][s] for s in seeds]
    return {**summarise(gains), "gains": gains, "seeds": seeds,
            "same_sign": all(g > 0 for g in gains) or all(g < 0 for g in gains)}


def format_table(results: dict, metrics=("miou", "thin_iou", "boundary_f"),
                 variants: list[str] | None = None) -> str:
    """A Markdown table of the reference results: one row per variant (all, or ``variants`` in
    that order), mean ± sample std over seeds for each metric (as fractions, not percent)."""
    titles = {"miou": "mIoU", "thin_iou": "thin-class IoU", "boundary_f": "boundary F"}
    rows = ["| variant | seeds | " + " | ".join(titles.get(m, m) for m in metrics) + " |",
            "|---|---|" + "---|" * len(metrics)]
    summary = results["summary"]
    for variant in (variants or list(summary)):
        s = summary[variant]
        cells = [f"{s[m]['mean']:.3f} ± {s[m]['std']:.3f}" for m in metrics]
        rows.append(f"| {variant} | {len(s['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fusionlab.experiments",
                                     description="Run a named experiment and store its results.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every variant for every seed")
    run.add_argument("name", choices=sorted(EXPERIMENTS))
    run.add_argument("--profile", choices=sorted(PROFILES), default=None)
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--variants", nargs="+", default=None)
    run.add_argument("--out", type=Path, default=None)
    merge = sub.add_parser("merge", help="merge result files of parallel runs")
    merge.add_argument("name", choices=sorted(EXPERIMENTS))
    merge.add_argument("files", type=Path, nargs="+")
    merge.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "merge":
        results = merge_results(args.name, args.files, args.out)
    else:
        results = run_experiment(args.name, get_profile(args.profile), args.seeds, args.out,
                                 args.variants)
    for variant, s in results["summary"].items():
        print(f"{variant:14s} mIoU {s['miou']['mean']:.3f} ± {s['miou']['std']:.3f}  "
              f"thin {s['thin_iou']['mean']:.3f}  boundary F {s['boundary_f']['mean']:.3f}")


if __name__ == "__main__":
    main()
