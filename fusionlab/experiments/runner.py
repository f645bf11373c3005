"""Run an experiment: every variant once per seed, results written after each run."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

from fusionlab import distributed
from fusionlab.bench import count_flops, count_parameters
from fusionlab.experiments.ablations import EXPERIMENTS
from fusionlab.experiments.builders import BuildContext, build_model
from fusionlab.experiments.data import load_data
from fusionlab.experiments.profiles import Profile, train_config
from fusionlab.experiments.spec import Experiment
from fusionlab.experiments.stats import run_precision
from fusionlab.experiments.store import (ResultsConflict, assemble, check_compatible,
                                         provenance_commits, read_results,
                                         runs_commits, stored_config, stored_path,
                                         stored_results, write_results)
from fusionlab.provenance import git_commit
from fusionlab.speed import choose_speed_mode, resolve_device
from fusionlab.train import seed_everything, train


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``.

    Raises:
        ValueError: an unknown name (lists the known ones).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    return EXPERIMENTS[name]


def variant_definitions(experiment: Experiment) -> dict:
    """label -> ``{"model", "options"}`` as stored in JSON (tuples become lists)."""
    return json.loads(json.dumps({label: {"model": v.model, "options": v.options}
                                  for label, v in experiment.variants.items()}))


def _stored_history(history: list[dict], digits: int = 6) -> list[dict]:
    """A ``TrainResult.history`` as a run stores it: ``step``, ``loss`` and ``lr`` per logging
    window, the floats rounded to ``digits`` significant digits (the files stay small)."""
    return [{"step": h["step"], "loss": float(f"{h['loss']:.{digits}g}"),
             "lr": float(f"{h['lr']:.{digits}g}")} for h in history]


def _stored_per_class(classes: list[str], values: list[float]) -> dict:
    """Per-class values (K,) as a run stores them: class name -> value, NaN (a class absent
    from the validation labels) as ``None``, which JSON writes as null."""
    return {c: None if math.isnan(v) else v for c, v in zip(classes, values, strict=True)}


def run_slug(experiment: str, variant: str, seed: int) -> str:
    """A file name for one run of ``experiment`` (its variant and seed): letters, digits, ``-``
    and ``_`` only, e.g. ``exfuse--GCN__encoder_s_layout--2``."""
    text = f"{experiment}--{variant}--{seed}"
    return "".join(c if c.isalnum() or c == "-" else "_" for c in text)


def run_checkpoint(folder: Path, name: str, profile: Profile, source: str, variant: str,
                   seed: int) -> Path:
    """Where ``run_experiment(..., checkpoints=folder)`` keeps the checkpoint of one run in
    progress: ``folder/CONFIGURATION-SOURCE/SLUG.pt``, the configuration being the name of the
    results file it is stored in (``stored_path``: profile, encoder, schedule) and the source
    its data (``"CamVid"`` or ``"SyntheticScenes"``), so that a checkpoint resumes only the run
    that wrote it and never one of another encoder, schedule or data."""
    return (Path(folder) / f"{stored_path(name, profile).stem}-{source}"
            / f"{run_slug(name, variant, seed)}.pt")


def borrowed_runs(experiment: Experiment, profile_config: dict,
                  precision: str) -> dict[tuple[str, int], dict]:
    """The runs of ``experiment``'s borrowed variants (``Experiment.borrowed``) found in the
    stored results of their own experiments made with this profile configuration and trained
    at autocast ``precision`` (``"fp32"``, ``"bf16"`` or ``"fp16"``; ``stats.run_precision``):
    (label, seed) -> the run under this experiment's label, with ``borrowed_from`` naming the
    experiment, its variant and the run's commit (for a run that does not record it, its
    file's commits).

    The borrower pairs these runs by seed with runs of its own at ``precision``; a pair of two
    precisions would mix the precision's effect into the gain, so the borrower trains its own
    run of the other seeds (and of runs stored without their precision).

    Raises:
        ResultsConflict: a stored variant defined otherwise than the borrowing one.
    """
    found = {}
    mine = variant_definitions(experiment)
    for label, (source, variant) in experiment.borrowed.items():
        stored = stored_results(source, profile_config)
        if stored is None:
            continue
        if stored["variants"].get(variant) != mine[label]:
            raise ResultsConflict(f"{source!r} stores {variant!r} as "
                                  f"{stored['variants'].get(variant)}, but {experiment.name!r} "
                                  f"borrows it as {mine[label]}")
        for run in stored["runs"]:
            if run["variant"] == variant and run_precision(run) == precision:
                # a run that records its commit names it; an older one, its file's commits
                origin = (f"{source}: {variant} "
                          f"({run.get('commit', stored['provenance']['commit'])})")
                found[label, run["seed"]] = {**run, "variant": label, "borrowed_from": origin}
    return found


def stale_copy(run: dict, precision: str) -> bool:
    """Whether ``run`` is a borrowed run (``borrowed_from``) that trained at another autocast
    precision than ``precision``, or at one it did not record: a copy that a borrower training
    at ``precision`` replaces with a run of its own (its original stays in its own
    experiment's results)."""
    return "borrowed_from" in run and run_precision(run) != precision


def run_experiment(name: str, profile: Profile, seeds: list[int], out: Path | None = None,
                   variants: list[str] | None = None, require_data: bool | None = None,
                   borrowed_only: bool = False, checkpoints: Path | None = None,
                   precision: str = "auto") -> dict:
    """Train every variant of experiment ``name`` once per seed; write and return the results.

    Every variant runs once before the next seed, so partial results come early. A borrowed
    variant's run (``Experiment.borrowed``) is copied from its own experiment's stored results
    of the same profile configuration when it is there and trained at the precision these runs
    train at (``borrowed_runs``), else trained. The file is
    rewritten after each run, so an interrupted experiment resumes where it stopped: runs with
    the same variant and seed already in the file are kept, not repeated, except a borrowed
    copy of another precision (``stale_copy``), which the new run replaces. Each run trained
    records its commit (and a run resumed from a checkpoint that earlier code wrote, those
    commits too), and the file's provenance lists the commits of its own runs
    (``store.runs_commits``). With ``checkpoints``,
    a run interrupted halfway resumes too, from its last checkpoint. Under ``torchrun``
    every run trains on all the processes (see ``fusionlab.train.train``) and the first process
    alone writes the file.

    Args:
        name: a key of ``EXPERIMENTS``.
        profile: how much each run trains.
        seeds: the seeds (each seeds the initialisation, the batch order and the augmentation).
        out: the results file (default ``store.stored_path(name, profile)``: the profile's own
            file, or the one of its ``--steps`` and ``--encoder``).
        variants: a subset of the variants (default all; on a pretrained encoder, the
            variants of the experiment's ``pretrained`` comparisons).
        require_data: refuse the synthetic fallback (see ``load_data``).
        borrowed_only: copy the borrowed runs that are stored and train nothing (the runs
            still missing are left for a later call).
        checkpoints: a folder for the checkpoint of each run in progress (``run_checkpoint``,
            written every ``TrainConfig.checkpoint_every`` steps and removed once the run is in
            ``out``); ``None``: no checkpoints.
        precision: the autocast precision of training (``TrainConfig.precision``); each run
            stores the one it used under ``speed``, and only borrowed runs of that precision
            are copied.

    Raises:
        ValueError: unknown experiment or variant, a corrupt results file, an unknown
            ``precision``.
        ResultsConflict: ``out`` holds another experiment, profile configuration or data
            (stored results are never dropped).
        DataNotFoundError: no CamVid when it is required.
    """
    experiment = get_experiment(name)
    default = experiment.pretrained_variants if profile.pretrained else []
    chosen = variants or default or list(experiment.variants)
    unknown = [v for v in chosen if v not in experiment.variants]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; {name} has {list(experiment.variants)}")
    out = Path(out or stored_path(name, profile))
    config = stored_config(profile)
    definitions = variant_definitions(experiment)
    previous = read_results(out) if out.is_file() else None
    if previous is not None:
        check_compatible(out, previous, name, config, definitions)
    runs = list(previous["runs"]) if previous else []
    wall = previous["provenance"]["wall_seconds"] if previous else 0.0

    data = load_data(profile, require=require_data)
    if data.is_fallback:
        print(data.banner(), file=sys.stderr)
    if previous is not None and previous["data"] != data.source:
        raise ResultsConflict(f"{out} holds runs on {previous['data']}, but this run has "
                              f"{data.source}; give another --out")
    context = BuildContext(len(data.classes), profile, data.train)
    commit = git_commit()  # the code that runs is the code at the start
    listed = provenance_commits(previous) if previous is not None else []
    cfg = train_config(profile, precision=precision)
    trains_at = choose_speed_mode(resolve_device(cfg.device), cfg.precision).precision
    borrowed = borrowed_runs(experiment, config, trains_at)

    def save():  # by the first process of a distributed run alone; the others wait for it
        if distributed.world().is_main:
            write_results(out, assemble(name, config, data.source, data.classes,
                                        data.thin_classes, definitions, runs, wall,
                                        runs_commits(runs, listed, commit)))
        distributed.barrier()

    def checkpoint(label: str, seed: int) -> Path | None:
        if checkpoints is None:
            return None
        return run_checkpoint(checkpoints, name, profile, data.source, label, seed)

    def forget(path: Path | None) -> None:  # a stored run's checkpoint (left by a kill)
        if path is not None and distributed.world().is_main:
            path.unlink(missing_ok=True)

    def put(run: dict, replaced: dict | None) -> None:  # a stale copy gives way to ``run``
        if replaced is not None:
            runs.remove(replaced)
        runs.append(run)

    for seed in seeds:
        for label in chosen:
            stored = next((r for r in runs if r["variant"] == label and r["seed"] == seed), None)
            if stored is not None and not stale_copy(stored, trains_at):
                forget(checkpoint(label, seed))
                continue
            if (label, seed) in borrowed:  # trained and stored by its own experiment
                put(borrowed[label, seed], stored)
                save()
                continue
            if borrowed_only:
                continue
            t0 = time.perf_counter()
            seed_everything(seed)
            model = build_model(experiment.variants[label], context)
            print(f"[{name}] {label}, seed {seed}", file=sys.stderr, flush=True)
            path = checkpoint(label, seed)
            cfg = train_config(profile, seed, checkpoint=None if path is None else str(path),
                               precision=precision)
            result = train(model, data.train, data.val, cfg)
            m = result.metrics
            # a run resumed from a checkpoint that earlier code wrote names that code too
            earlier = {"earlier_commits": result.commits[:-1]} if result.commits[:-1] else {}
            put({
                "variant": label, "seed": seed, "commit": commit, **earlier,
                "miou": m["miou"], "iou": m["iou"],
                "boundary_f": m["boundary_f"], "pixel_accuracy": m["pixel_accuracy"],
                "eval_size": list(m["eval_size"]), "train_seconds": result.train_seconds,
                "threads": torch.get_num_threads(), "speed": result.speed,
                "params": count_parameters(model),
                "gflops": count_flops(model.cpu(), profile.size) / 1e9,
                "final_loss": result.history[-1]["loss"],
                "boundary_f_per_class": _stored_per_class(data.classes,
                                                          m["boundary_f_per_class"]),
                "history": _stored_history(result.history)}, stored)
            wall += time.perf_counter() - t0 + result.seconds_before
            save()
            forget(path)
    if previous is None or runs != previous["runs"]:  # an unchanged file is left as it is
        save()
    return read_results(out)
