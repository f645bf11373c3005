"""The results store: reference results as JSON files with their provenance.

A results file holds one experiment in one profile configuration: every run (variant, seed,
metrics, seconds, threads), the summary over seeds, and the provenance (profile, seeds, device,
versions, commits, wall time, the commands that make it). Stored results are never deleted: a
file made by another experiment or another profile configuration is refused, not overwritten.

A run holds ``variant``, ``seed`` and ``commit`` (the code that finished it; runs stored before
it was recorded lack it, and their file's provenance lists the commits), and for a run resumed
from a checkpoint that earlier code wrote, ``earlier_commits`` (those commits, oldest first:
``TrainResult.commits``); ``miou``, ``iou`` (one
value per class, in the order of the file's ``classes``; NaN for a class absent from the
validation labels), ``boundary_f``, ``pixel_accuracy`` and ``eval_size``; ``train_seconds``,
``threads``, ``speed``, ``params`` and ``gflops``; ``final_loss`` (the mean training loss of the
last logging window); ``boundary_f_per_class`` (class name -> boundary F-score, null for a class
absent from the validation labels); and ``history`` (the training loss: ``{"step", "loss",
"lr"}`` per logging window, floats to 6 significant digits); a run copied from another
experiment's results also holds ``borrowed_from`` (that experiment, its variant and the run's
commit, or for a run that does not record it, its file's commits). Runs stored before
``boundary_f_per_class`` and ``history`` existed lack them: the summaries, merges and tables
never read them, and a reader of them checks for them (``"history" in run``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.resources
import json
import os
import platform
import re
import shlex
from pathlib import Path

import numpy as np
import torch

import fusionlab
from fusionlab.experiments.profiles import PROFILES, Profile, is_pretrained
from fusionlab.experiments.stats import run_precision, summarise, thin_iou
from fusionlab.io import atomic_write
from fusionlab.provenance import RESULTS as PACKAGED


class ResultsConflict(ValueError):
    """A results file that belongs to another experiment or profile configuration."""


def results_dir() -> Path:
    """Where new results are written: ``$FUSIONLAB_RESULTS``, else the package's own
    ``results`` folder when the package lives in a checkout of its repository (the book's
    folder beside it decides, not whether results exist yet), else ``./results``."""
    if os.environ.get("FUSIONLAB_RESULTS"):
        return Path(os.environ["FUSIONLAB_RESULTS"])
    package = Path(fusionlab.__file__).resolve().parent
    in_checkout = (package.parent / "book").is_dir()
    return package / PACKAGED if in_checkout else Path.cwd() / "results"


def packaged_dir() -> Path:
    """The folder of the results files shipped with the installed package
    (``importlib.resources``)."""
    return Path(str(importlib.resources.files("fusionlab") / PACKAGED))


def packaged_results(filename: str) -> Path | None:
    """A results file shipped with the installed package (``packaged_dir``), or ``None``."""
    path = packaged_dir() / filename
    return path if path.is_file() else None


def configuration_name(profile: str, steps: int | None = None, encoder: str | None = None) -> str:
    """``PROFILE``, ``PROFILE-ENCODER``, ``PROFILE-Nsteps`` or ``PROFILE-ENCODER-Nsteps``: a
    name for a profile configuration in file names (``steps`` and ``encoder`` where they depart
    from the profile's, as ``departures`` gives them)."""
    return "-".join([profile, *([encoder] if encoder else []), *([f"{steps}steps"] if steps
                                                                  else [])])


def results_path(name: str, profile: str, steps: int | None = None,
                 encoder: str | None = None) -> Path:
    """Where the reference results of experiment ``name`` in ``profile`` are stored:
    ``NAME-PROFILE.json``; ``NAME-PROFILE-ENCODER.json`` for runs on another encoder than the
    profile's (``experiment run --encoder E``); ``...-Nsteps.json`` for runs trained for
    ``steps`` instead of the profile's schedule (``experiment run --steps N``)."""
    return results_dir() / f"{name}-{configuration_name(profile, steps, encoder)}.json"


def stored_config(profile: Profile) -> dict:
    """``profile`` as a results file stores it (its ``profile_config``: tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(profile)))


def stored_path(name: str, profile: Profile) -> Path:
    """Where ``experiment run`` stores experiment ``name`` trained with ``profile`` by default:
    ``results_path`` with the ``--steps`` and ``--encoder`` the profile departs from its named
    profile by (``departures``)."""
    steps, encoder = departures(stored_config(profile))
    return results_path(name, profile.name, steps, encoder)


def read_results(path: str | os.PathLike) -> dict:
    """Read a results file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid JSON or not a results file (names the path).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a valid results file (JSON error: {err}); move it "
                         "away or restore it from version control") from err
    if not isinstance(data, dict) or not {"experiment", "runs", "profile_config"} <= set(data):
        raise ValueError(f"{path} is not a fusionlab results file (expected the keys "
                         "'experiment', 'runs' and 'profile_config')")
    return data


def load_results(name: str, profile: str = "cpu", steps: int | None = None,
                 encoder: str | None = None) -> dict | None:
    """The stored reference results of an experiment, or ``None`` if there are none: from
    ``results_dir()`` (a new run is read at once), else the copy shipped with the package;
    ``steps``, ``encoder``: those trained for another schedule or on another encoder than the
    profile's (see ``results_path``).

    Raises:
        ValueError: a corrupt file (see ``read_results``).
    """
    path = results_path(name, profile, steps, encoder)
    if not path.is_file():  # new runs first, then the results shipped with the package
        path = packaged_results(path.name)
    return None if path is None else read_results(path)


def with_defaults(profile_config: dict) -> dict:
    """A stored profile configuration with the fields added to ``Profile`` since it was written
    filled in with their defaults (a file made before profiles named their encoder was made
    on ``"resnet"``), so that it compares equal to the same configuration written today."""
    defaults = {f.name: f.default for f in dataclasses.fields(Profile)
                if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps({**defaults, **profile_config}))


def config_differences(stored: dict, now: dict) -> dict:
    """Field -> (stored value, value now) for each field where two stored profile
    configurations differ (each completed by ``with_defaults``); empty when they are equal."""
    a, b = with_defaults(stored), with_defaults(now)
    return {k: (a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)}


def check_compatible(path: Path, stored: dict, name: str, profile_config: dict,
                     variants: dict) -> None:
    """Refuse to add runs to a results file of another experiment, profile configuration or
    variant definition.

    Raises:
        ResultsConflict: names the file, what differs, and what to do.
    """
    advice = "keep it, and write the new runs elsewhere with --out, or move the file away first"
    if stored["experiment"] != name:
        raise ResultsConflict(f"{path} holds experiment {stored['experiment']!r}, not {name!r}: "
                              f"{advice}")
    diff = config_differences(stored["profile_config"], profile_config)
    if diff:
        raise ResultsConflict(f"{path} was made with another configuration of profile "
                              f"{profile_config['name']!r} (stored vs now: {diff}): {advice}")
    changed = sorted(v for v, d in stored.get("variants", {}).items()
                     if v in variants and d != variants[v])
    if changed:
        raise ResultsConflict(f"{path} holds runs of variants defined differently now: "
                              f"{changed}: {advice}")


def device_name() -> str:
    """The accelerator, or the CPU's architecture (the threads of each run are recorded with
    the run, and summarised under ``provenance["threads"]``)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()})"


_THREADS_IN_DEVICE = re.compile(r", \d+ threads?\)$")
"""The thread count that files written before ``provenance["threads"]`` carried in their
device name: removed when merging, so that one CPU is named once."""


def write_results(path: str | os.PathLike, results: dict) -> None:
    """Write a results file atomically."""
    with atomic_write(path, "w") as f:
        json.dump(results, f, indent=1)


def assemble(name: str, profile_config: dict, source: str, classes, thin_classes,
             variants: dict, runs: list[dict], wall: float, commit: str,
             device: str | None = None) -> dict:
    """The results dictionary: runs, the summary over seeds per variant, the provenance.

    Args:
        variants: label -> ``{"model", "options"}``, in table order (the summary follows it).
    """
    classes, thin = list(classes), list(thin_classes)
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
            "iou_mean": [float(np.nanmean(col)) if np.isfinite(col).any() else None
                         for col in iou.T],  # None: a class absent in every run
            "params": mine[0]["params"],
            "gflops": mine[0].get("gflops"),
        }
    seeds = sorted({r["seed"] for r in runs})
    eval_sizes = sorted({tuple(r["eval_size"]) for r in runs if r.get("eval_size")})
    return {
        "experiment": name, "profile": profile_config["name"],
        "profile_config": profile_config, "data": source,
        "train_size": list(profile_config["size"]),
        "eval_size": [list(s) for s in eval_sizes],
        "classes": classes, "thin_classes": thin, "variants": variants,
        "summary": summary, "runs": runs,
        "provenance": {
            "seeds": seeds, "device": device or device_name(),
            "threads": sorted({r["threads"] for r in runs if "threads" in r}),
            "torch": torch.__version__, "python": platform.python_version(),
            "fusionlab": fusionlab.__version__, "commit": commit, "wall_seconds": wall,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": reproduce_command(name, profile_config, variants, runs),
        },
    }


def reproduce_command(name: str, profile_config: dict, variants: dict,
                      runs: list[dict]) -> str:
    """The ``experiment run`` command that trains a results file's runs again: its profile,
    the ``--encoder`` and ``--steps`` where the configuration departs from the named profile,
    and per group of variants run at the same seeds and autocast precision, one call naming
    that ``--precision`` (none for runs that do not record it: ``experiment run`` then picks
    by machine), those seeds and the variants (in table order, each one shell word:
    ``_shell_word``), the groups joined by ``&&`` (each call adds its runs to the same file).

    ``--variants`` is left out only where one group holds every variant on an encoder trained
    from scratch, the one case where ``experiment run`` trains them all by default (on a
    pretrained encoder it trains the pretrained comparisons). No runs: the command without
    seeds, variants or precision.
    """
    base = f"python -m fusionlab experiment run {name} --profile {profile_config['name']}"
    options = _profile_arguments(profile_config)
    # (precision, seeds) -> the variants run at exactly those seeds at that precision
    groups: dict[tuple[str | None, tuple[int, ...]], list[str]] = {}
    for variant in variants:
        seeds: dict[str | None, set[int]] = {}
        for r in runs:
            if r["variant"] == variant:
                seeds.setdefault(run_precision(r), set()).add(r["seed"])
        for precision, chosen in seeds.items():
            groups.setdefault((precision, tuple(sorted(chosen))), []).append(variant)
    pretrained = is_pretrained(with_defaults(profile_config)["encoder"])
    if not groups:
        return base + options
    return " && ".join(
        base + ("" if precision is None else f" --precision {precision}")
        + f" --seeds {' '.join(map(str, seeds))}{options}"
        + ("" if chosen == list(variants) and not pretrained
           else " --variants " + " ".join(map(_shell_word, chosen)))
        for (precision, seeds), chosen in groups.items())


def runs_commits(runs: list[dict], listed: list[str], current: str) -> str:
    """The provenance's ``commit``: every commit a file's own runs (not the borrowed copies)
    were made at, in the order they were stored, comma-separated. A run that records its
    ``commit`` names it, after its ``earlier_commits`` (a run resumed from a checkpoint that
    earlier code wrote); for runs stored before runs recorded it, ``listed`` (the commits
    their files listed) stands in. A file of borrowed copies alone names ``current``, the code
    that copied them."""
    own = [r for r in runs if "borrowed_from" not in r]
    older = listed if any("commit" not in r for r in own) else []
    made_at = dict.fromkeys([*older, *(c for r in own if "commit" in r
                                       for c in [*r.get("earlier_commits", []), r["commit"]])])
    return ", ".join(made_at or [current])


def departures(profile_config: dict) -> tuple[int | None, str | None]:
    """(steps, encoder) where a configuration departs from its named profile's, else ``None``
    each: the ``--steps`` and ``--encoder`` of ``experiment run`` that made it (files made
    before profiles named their encoder used the profile's)."""
    named = PROFILES.get(profile_config["name"])
    encoder, steps = profile_config.get("encoder", "resnet"), profile_config["steps"]
    return (None if named is not None and named.steps == steps else steps,
            None if named is not None and named.encoder == encoder else encoder)


def _shell_word(text: str) -> str:
    """``text`` as one word of a POSIX shell command: in double quotes where it holds an
    apostrophe and nothing a shell expands inside them (``GCN, encoder's layout`` reads as
    typed), else as ``shlex.quote`` writes it."""
    if "'" in text and not set(text) & set('"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def _profile_arguments(profile_config: dict) -> str:
    """`` --encoder E`` and `` --steps N`` where a run's configuration departs from its named
    profile's."""
    steps, encoder = departures(profile_config)
    return ("" if encoder is None else f" --encoder {encoder}") + (
        "" if steps is None else f" --steps {steps}")


def stored_results(name: str, profile_config: dict) -> dict | None:
    """The stored results of experiment ``name`` made with exactly this profile configuration
    (read where ``load_results`` reads them, under the name ``experiment run`` gives them), or
    ``None``: none stored, or stored with another configuration.

    Raises:
        ValueError: a corrupt file (see ``read_results``).
    """
    steps, encoder = departures(profile_config)
    results = load_results(name, profile_config["name"], steps, encoder)
    if results is None or (with_defaults(results["profile_config"])
                           != with_defaults(profile_config)):
        return None
    return results


def stored_configurations(name: str) -> list[dict]:
    """The profile configurations (``profile_config``) of every stored results file of
    experiment ``name``, read where ``load_results`` reads them: ``results_dir()``, then the
    copies shipped with the package (a file in both is read from the first), by file name.

    Raises:
        ValueError: a corrupt file (see ``read_results``).
    """
    files = {}
    for folder in (results_dir(), packaged_dir()):
        for path in sorted(folder.glob(f"{name}-*.json")) if folder.is_dir() else []:
            files.setdefault(path.name, path)
    stored = [read_results(path) for _, path in sorted(files.items())]
    return [r["profile_config"] for r in stored if r["experiment"] == name]


def provenance_commits(results: dict) -> list[str]:
    """The commits a results file's runs were made at, in the order they were stored: its
    provenance keeps them comma-separated in one string (``runs_commits``)."""
    return [commit.strip() for commit in results["provenance"]["commit"].split(",")]


def merge_results(name: str, paths: list[Path], out: Path, variants: dict) -> dict:
    """Merge result files of one experiment run in parallel processes (e.g. one per subset of
    variants or seeds) into ``out``: runs are concatenated, the summary recomputed, the wall
    times summed, the commits of the runs kept (``runs_commits``) and every device named.
    Where one file holds the experiment's own run of a (variant, seed) and another a copy
    borrowed from another experiment (``borrowed_from``), the own run is kept (the copy's
    original stays in its experiment's results).

    Raises:
        ValueError: no files, files of another experiment, profile configuration or data, or
            a (variant, seed) pair found in two files (but for a borrowed copy).
        ResultsConflict: ``out`` exists and is not one of the merged files.
    """
    if not paths:
        raise ValueError("no results files to merge")
    parts = [read_results(p) for p in paths]
    first = parts[0]
    for path, part in zip(paths, parts):  # each refusal names the file and what differs
        differs = []
        if part["experiment"] != name:
            differs.append(f"experiment {part['experiment']!r}")
        if part["data"] != first["data"]:
            differs.append(f"data {part['data']!r} (the first file: {first['data']!r})")
        diff = config_differences(first["profile_config"], part["profile_config"])
        if diff:
            differs.append(f"another profile configuration (the first file vs this: {diff})")
        if differs:
            raise ValueError(f"every file must hold experiment {name!r} with one profile "
                             f"configuration and one data source; {path} holds "
                             + "; ".join(differs))
    out = Path(out)
    if out.exists() and out.resolve() not in {Path(p).resolve() for p in paths}:
        raise ResultsConflict(f"{out} exists and is not one of the merged files: merge it too, "
                              "or choose another --out")
    runs = {}
    for part in parts:
        for r in part["runs"]:
            key = (r["variant"], r["seed"])
            if key in runs:
                if ("borrowed_from" in runs[key]) == ("borrowed_from" in r):
                    raise ValueError(f"{r['variant']!r}, seed {r['seed']} is in two files")
                if "borrowed_from" in r:
                    continue
            runs[key] = r
    runs = list(runs.values())
    # the lists of the parts that hold runs stored before runs recorded their commit
    listed = list(dict.fromkeys(c for p in parts if any("commit" not in r for r in p["runs"]
                                                          if "borrowed_from" not in r)
                                for c in provenance_commits(p)))
    results = assemble(
        name, first["profile_config"], first["data"], first["classes"], first["thin_classes"],
        variants, runs, sum(p["provenance"]["wall_seconds"] for p in parts),
        runs_commits(runs, listed, ", ".join(dict.fromkeys(
            c for p in parts for c in provenance_commits(p)))),
        " / ".join(dict.fromkeys(_THREADS_IN_DEVICE.sub(")", device) for p in parts
                                 for device in p["provenance"]["device"].split(" / "))))
    write_results(out, results)
    return results
