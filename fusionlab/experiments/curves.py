"""Learning curves from stored results: one variant trained for several schedules, each a run
of its own (a schedule is a whole poly decay, not a checkpoint of a longer run).

The results of one schedule are a file of ``experiment run --steps N`` (or the profile's own
file at its own schedule), on one encoder (``--encoder E``); see ``store.results_path``.
"""

from __future__ import annotations

from fusionlab.experiments.profiles import PROFILES
from fusionlab.experiments.stats import summarise, t_interval
from fusionlab.experiments.store import load_results

SCHEDULES = (750, 1500, 3000, 6000)
"""The schedules of the book's learning curves, in training steps (each twice the last)."""

CONVERGED_GAIN = 0.015
"""A schedule is long enough when doubling it adds at most this much mIoU (1.5 points, mean
over the paired seeds): further gains would be small beside the gains the papers report."""


def learning_curve(name: str, variant: str, profile: str = "cpu", encoder: str | None = None,
                   schedules=SCHEDULES, metric: str = "miou") -> dict[int, dict[int, float]]:
    """``metric`` of ``variant`` per schedule and seed, from the stored results.

    Args:
        name: the experiment, e.g. ``"fusion-levels"``.
        variant: its variant, e.g. ``"FPN c2-c5"``.
        profile: the profile name.
        encoder: the encoder (``None``: the profile's own).
        schedules: the training steps looked for; a schedule without stored runs of
            ``variant`` is left out.
        metric: a key of each run (``"miou"``, ``"boundary_f"``, ...).

    Returns:
        ``{steps: {seed: value}}`` in increasing steps.

    Raises:
        ValueError: an unknown profile, a corrupt results file.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    own = PROFILES[profile]
    encoder = None if encoder in (None, own.encoder) else encoder
    curve = {}
    for steps in sorted(schedules):
        results = load_results(name, profile, None if steps == own.steps else steps, encoder)
        runs = {r["seed"]: r[metric] for r in (results or {}).get("runs", [])
                if r["variant"] == variant}
        if runs:
            curve[steps] = dict(sorted(runs.items()))
    return curve


def curve_summary(curve: dict[int, dict[int, float]]) -> list[dict]:
    """One row per schedule: ``steps``, ``summarise`` of its values, and the gain over the
    schedule of half as many steps (the same seeds paired): ``gain`` (mean), ``ci`` (95%
    Student-t interval) and ``gain_seeds``; ``None`` where the curve has no schedule of half
    the steps or the two share fewer than two seeds.
    """
    rows = []
    for steps, by_seed in curve.items():
        row = {"steps": steps, **summarise(list(by_seed.values())), "gain": None, "ci": None,
               "gain_seeds": []}
        half = curve.get(steps // 2) if steps % 2 == 0 else None
        seeds = sorted(set(half) & set(by_seed)) if half else []
        if len(seeds) >= 2:
            gains = [by_seed[s] - half[s] for s in seeds]
            row.update(gain=sum(gains) / len(gains), ci=t_interval(gains), gain_seeds=seeds)
        rows.append(row)
    return rows


def reference_schedule(curve: dict[int, dict[int, float]],
                       converged_gain: float = CONVERGED_GAIN) -> int | None:
    """The shortest schedule of ``curve`` whose doubling adds at most ``converged_gain``
    (the mean paired gain of ``curve_summary``), or ``None`` when no measured doubling does."""
    rows = {row["steps"]: row for row in curve_summary(curve)}
    for steps in sorted(curve):
        doubled = rows.get(2 * steps)
        if doubled is not None and doubled["gain"] is not None \
                and doubled["gain"] <= converged_gain:
            return steps
    return None


IMAGENET = "mobilenet_v2-imagenet"
"""The encoder of the papers' footing: MobileNetV2 with torchvision's ImageNet weights."""


def footing_steps(profile: str = "cpu") -> int | None:
    """The reference schedule of the runs on the ImageNet encoder (the papers' footing):
    ``reference_schedule`` of chapter 1's learning curve of FPN c2-c5 on that encoder, or
    ``None`` until the curve settles it.

    Raises:
        ValueError: an unknown profile, a corrupt results file.
    """
    return reference_schedule(learning_curve("fusion-levels", "FPN c2-c5", profile, IMAGENET))


def load_footings(name: str, profile: str = "cpu") -> tuple[dict | None, dict | None, int | None]:
    """An experiment's stored results on both footings: (from scratch at the profile's own
    schedule, on the ImageNet encoder at its reference schedule, that schedule). The reference
    schedule is ``reference_schedule`` of chapter 1's learning curve of FPN c2-c5 on the
    ImageNet encoder; ``None`` (and no pretrained results) until that curve settles it.

    Raises:
        ValueError: a corrupt results file (see ``store.read_results``).
    """
    steps = footing_steps(profile)
    pretrained = None if steps is None else load_results(name, profile, steps, IMAGENET)
    return load_results(name, profile), pretrained, steps
