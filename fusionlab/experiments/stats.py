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


def paired_gain(results: dict, base: str, variant: str, metric: str = "miou") -> dict:
    """The gain of ``variant`` over ``base``, paired by seed.

    Returns:
        ``summarise`` of the per-seed differences (variant - base) plus ``gains`` (in seed
        order), ``seeds``, ``ci`` (the 95% Student-t interval of the mean gain), ``real``
        (the interval excludes 0) and ``same_sign`` (every seed agrees on the sign).

    Raises:
        ValueError: a variant missing from the results, or no seed run for both.
    """
    by_seed = {}
    for name in (base, variant):
        runs = {r["seed"]: run_metric(results, r, metric) for r in results["runs"]
                if r["variant"] == name}
        if not runs:
            raise ValueError(f"no runs of {name!r} in the results of "
                             f"{results.get('experiment', '?')!r}")
        by_seed[name] = runs
    seeds = shared_seeds(results, base, variant)
    if not seeds:
        raise ValueError(f"{base!r} and {variant!r} share no seed")
    gains = [by_seed[variant][s] - by_seed[base][s] for s in seeds]
    low, high = t_interval(gains)
    return {**summarise(gains), "gains": gains, "seeds": seeds, "ci": (low, high),
            "real": bool(low > 0 or high < 0),
            "same_sign": all(g > 0 for g in gains) or all(g < 0 for g in gains)}


def class_gains(results: dict, base: str, variant: str) -> np.ndarray:
    """The per-class IoU gain of ``variant`` over ``base``, paired by seed: the mean over the
    seeds run for both of (variant - base) per class.

    Returns:
        (K,) in the order of ``results["classes"]``; NaN for a class absent from the
        validation labels in every paired run.

    Raises:
        ValueError: a variant missing from the results, or no seed run for both.
    """
    by_seed = {}
    for name in (base, variant):
        runs = {r["seed"]: np.array(r["iou"], dtype=float) for r in results["runs"]
                if r["variant"] == name}  # seed -> (K,)
        if not runs:
            raise ValueError(f"no runs of {name!r} in the results of "
                             f"{results.get('experiment', '?')!r}")
        by_seed[name] = runs
    seeds = sorted(set(by_seed[base]) & set(by_seed[variant]))
    if not seeds:
        raise ValueError(f"{base!r} and {variant!r} share no seed")
    diffs = np.stack([by_seed[variant][s] - by_seed[base][s] for s in seeds])  # (seeds, K)
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(diffs).sum(0)  # (K,)
        sums = np.where(np.isfinite(diffs), diffs, 0.0).sum(0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)  # (K,)


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
