"""Statistics of reference results: summaries over seeds and gains paired by seed.

A gain is the per-seed difference variant - base (same seed: same initialisation order, same
batches, same augmentation), summarised by its mean and a 95% Student-t confidence interval,
mean ± t(0.975, n - 1) * s / sqrt(n). A gain is called *real* only when that interval excludes 0;
with one seed there is no interval and no gain is called real.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from fusionlab.speed import PRECISION_NAMES

CONFIDENCE = 0.95
"""Level of the confidence intervals."""


def summarise(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (ddof=1; 0 for one value), min and max of the finite
    values, their count ``n``, and ``nan``: how many values were NaN (reported, not hidden).

    Every key is NaN when no value is finite.
    """
    v = np.asarray(list(values), dtype=float)
    finite = v[np.isfinite(v)]
    nan = int(v.size - finite.size)
    if finite.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0,
                "nan": nan}
    return {"mean": float(finite.mean()),
            "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "min": float(finite.min()), "max": float(finite.max()), "n": int(finite.size),
            "nan": nan}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t confidence interval (low, high) of the mean of ``values``.

    Returns (NaN, NaN) for fewer than two finite values.

    Raises:
        ValueError: ``confidence`` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def thin_iou(classes: Sequence[str], thin_classes: Sequence[str], iou: Sequence[float]) -> float:
    """Mean of the per-class ``iou`` (K,) over ``thin_classes`` (NaN, i.e. absent, skipped)."""
    idx = [list(classes).index(c) for c in thin_classes]
    values = np.array(iou, dtype=float)[idx]
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def run_metric(results: dict, run: dict, metric: str) -> float:
    """The value of ``metric`` for one stored run: a stored key, or ``"thin_iou"`` computed
    from the run's per-class IoU.

    Raises:
        KeyError: a metric the run does not hold (names the metric and what it has).
    """
    if metric == "thin_iou":
        return thin_iou(results["classes"], results["thin_classes"], run["iou"])
    if metric not in run:
        raise KeyError(f"runs hold no {metric!r}; they have {sorted(run)}")
    return float(run[metric])


def shared_seeds(results: dict, base: str, variant: str) -> list[int]:
    """The seeds run for both ``base`` and ``variant`` in ``results``, sorted (empty when
    either was not run): the seeds a paired gain is computed over."""
    seeds = [{r["seed"] for r in results["runs"] if r["variant"] == name}
             for name in (base, variant)]
    return sorted(seeds[0] & seeds[1])


def run_precision(run: dict) -> str | None:
    """The autocast precision one stored run trained at (``"fp32"``, ``"bf16"`` or
    ``"fp16"``, from its ``speed``), or ``None`` for a run stored without it."""
    return (run.get("speed") or {}).get("precision")


def paired_gain(results: dict, base: str, variant: str, metric: str = "miou") -> dict:
    """The gain of ``variant`` over ``base``, paired by seed.

    Returns:
        ``summarise`` of the per-seed differences (variant - base) plus ``gains`` (in seed
        order), ``seeds``, ``ci`` (the 95% Student-t interval of the mean gain), ``real``
        (the interval excludes 0), ``same_sign`` (every seed agrees on the sign) and
        ``mixed_precision``: the seeds whose two runs trained at different autocast
        precisions (``run_precision``; a run without one is not counted), whose difference
        holds the precision's effect as well as the variant's.

    Raises:
        ValueError: a variant missing from the results, or no seed run for both.
    """
    by_seed = {}
    for name in (base, variant):
        runs = {r["seed"]: r for r in results["runs"] if r["variant"] == name}
        if not runs:
            raise ValueError(f"no runs of {name!r} in the results of "
                             f"{results.get('experiment', '?')!r}")
        by_seed[name] = runs
    seeds = shared_seeds(results, base, variant)
    if not seeds:
        raise ValueError(f"{base!r} and {variant!r} share no seed")
    gains = [run_metric(results, by_seed[variant][s], metric)
             - run_metric(results, by_seed[base][s], metric) for s in seeds]
    precisions = {s: {run_precision(by_seed[name][s]) for name in (base, variant)} - {None}
                  for s in seeds}
    low, high = t_interval(gains)
    return {**summarise(gains), "gains": gains, "seeds": seeds, "ci": (low, high),
            "real": bool(low > 0 or high < 0),
            "same_sign": all(g > 0 for g in gains) or all(g < 0 for g in gains),
            "mixed_precision": [s for s in seeds if len(precisions[s]) > 1]}


def precision_effect(first: dict, first_variant: str, second: dict, second_variant: str,
                     metric: str = "miou") -> dict:
    """What the autocast precision alone changes: one model stored in two results files (e.g.
    chapter 1's ``"FPN c2-c5"`` and chapter 6's ``"FPN"``), paired by the seeds whose two runs
    trained at different precisions (``run_precision``; a borrowed copy of one run in the
    other file is the same run and does not count).

    Returns:
        ``None`` while no seed pairs two precisions; else ``summarise`` of the per-seed
        differences (fractions of the metric, as stored: 0.01 is one point) plus
        ``differences`` (in seed order), ``seeds``, ``ci`` (95% Student-t interval of the
        mean) and ``precisions``: the pair ``(high, low)`` the differences are taken as,
        ``high`` minus ``low`` (in the order of ``speed.PRECISION_NAMES``, e.g.
        ``("fp32", "bf16")``). Runs stored without their precision are left out.

    Raises:
        ValueError: a variant missing from its file, the two variants are different models,
            or the seeds pair different couples of precisions.
    """
    for results, variant in ((first, first_variant), (second, second_variant)):
        if variant not in results["variants"]:
            raise ValueError(f"{variant!r} is not a variant of {results['experiment']!r}; it "
                             f"has {list(results['variants'])}")
    if first["variants"][first_variant] != second["variants"][second_variant]:
        raise ValueError(f"{first_variant!r} of {first['experiment']!r} and {second_variant!r} "
                         f"of {second['experiment']!r} are not one model")
    runs = [{r["seed"]: r for r in results["runs"] if r["variant"] == variant
             and "borrowed_from" not in r}
            for results, variant in ((first, first_variant), (second, second_variant))]
    order = list(PRECISION_NAMES)  # highest first
    seeds, couples, differences = [], set(), []
    for seed in sorted(set(runs[0]) & set(runs[1])):
        precisions = (run_precision(runs[0][seed]), run_precision(runs[1][seed]))
        if None in precisions or precisions[0] == precisions[1]:
            continue
        pair = sorted(((first, runs[0][seed]), (second, runs[1][seed])),
                      key=lambda item: order.index(run_precision(item[1])))  # high first
        precisions = tuple(sorted(precisions, key=order.index))
        seeds.append(seed)
        couples.add(precisions)
        differences.append(run_metric(*pair[0], metric) - run_metric(*pair[1], metric))
    if not seeds:
        return None
    if len(couples) > 1:
        raise ValueError(f"the seeds pair different precisions: {sorted(couples)}")
    return {**summarise(differences), "differences": differences, "seeds": seeds,
            "ci": t_interval(differences), "precisions": couples.pop()}


PER_CLASS_METRICS = ("iou", "boundary_f_per_class")
"""The per-class metrics a stored run holds: a list in the order of ``results["classes"]``
(``iou``) or a mapping of class name to value (``boundary_f_per_class``); ``None`` or NaN where
the class is absent from the validation labels."""


def per_class_values(results: dict, run: dict, metric: str = "iou") -> np.ndarray:
    """One stored run's per-class ``metric`` (``PER_CLASS_METRICS``) as (K,) floats in the
    order of ``results["classes"]``, NaN for a class absent from the validation labels.

    Raises:
        ValueError: a metric that is not per class.
        KeyError: a run without ``metric`` (names the metric and what the run has).
    """
    if metric not in PER_CLASS_METRICS:
        raise ValueError(f"a per-class metric is one of {PER_CLASS_METRICS}, got {metric!r}")
    if metric not in run:
        raise KeyError(f"runs hold no {metric!r}; they have {sorted(run)}")
    values = run[metric]
    if isinstance(values, dict):  # class name -> value or None
        values = [values.get(c) for c in results["classes"]]
    return np.array([math.nan if v is None else v for v in values], dtype=float)  # (K,)


def finite_mean(values: np.ndarray) -> np.ndarray:
    """The mean over axis 0 of the finite entries of (N, K) ``values``: (K,), NaN where a
    column has none (``np.nanmean`` would warn there), e.g. a class absent from every run."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(0)
    return np.where(finite.any(0), total / np.maximum(finite.sum(0), 1), np.nan)  # (K,)


def class_gain_summary(results: dict, base: str, variant: str, metric: str = "iou") -> dict:
    """The per-class gains of ``variant`` over ``base``, paired by seed, and their summary per
    class (the per-class counterpart of ``paired_gain``).

    Returns:
        ``seeds`` (run for both, ``shared_seeds``), ``gains`` (S, K): variant - base of
        ``metric`` per seed and class, and per class (K,) each: ``mean`` over the seeds,
        ``low`` and ``high`` (its 95% Student-t interval, NaN with fewer than two seeds) and
        ``real`` (the interval excludes 0). Classes in the order of ``results["classes"]``;
        NaN where a class is absent from the validation labels (in every paired run, for the
        summaries).

    Raises:
        ValueError: a variant missing from the results, no seed run for both, or a metric that
            is not per class.
        KeyError: runs without ``metric``.
    """
    for name in (base, variant):
        if not any(r["variant"] == name for r in results["runs"]):
            raise ValueError(f"no runs of {name!r} in the results of "
                             f"{results.get('experiment', '?')!r}")
    seeds = shared_seeds(results, base, variant)
    if not seeds:
        raise ValueError(f"{base!r} and {variant!r} share no seed")
    runs = {(r["variant"], r["seed"]): r for r in results["runs"]}
    gains = np.stack([per_class_values(results, runs[variant, s], metric)
                      - per_class_values(results, runs[base, s], metric)
                      for s in seeds])  # (S, K)
    mean = finite_mean(gains)  # (K,)
    low, high = np.array([t_interval(column) for column in gains.T]).T  # (K,) each
    return {"seeds": seeds, "gains": gains, "mean": mean, "low": low, "high": high,
            "real": (low > 0) | (high < 0)}


def class_gains(results: dict, base: str, variant: str, metric: str = "iou") -> np.ndarray:
    """The per-class gain of ``variant`` over ``base``, paired by seed: the mean over the
    seeds run for both of (variant - base) per class (``class_gain_summary``).

    Returns:
        (K,) in the order of ``results["classes"]``; NaN for a class absent from the
        validation labels in every paired run.

    Raises:
        ValueError, KeyError: see ``class_gain_summary``.
    """
    return class_gain_summary(results, base, variant, metric)["mean"]


def mean_interval(results: dict, variant: str, metric: str = "miou") -> tuple[float, float, float]:
    """The mean of ``metric`` over ``variant``'s runs and its 95% Student-t interval:
    (mean, low, high), the interval NaN for one run.

    Raises:
        ValueError: no runs of ``variant``.
    """
    values = [run_metric(results, r, metric) for r in results["runs"] if r["variant"] == variant]
    if not values:
        raise ValueError(f"no runs of {variant!r} in the results of "
                         f"{results.get('experiment', '?')!r}")
    low, high = t_interval(values)
    return float(np.nanmean(values)), low, high
