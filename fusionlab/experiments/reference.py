"""What a chapter reads from its stored reference results, without indexing the raw JSON: the
runs of a variant, their histories, loss curve and final training loss, means over seeds, one
pair at several schedule lengths, what is still to run, and the section that opens a chapter's
reference results (provenance and table)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fusionlab.experiments.report import (footing_reading, gain_text, gain_verdict,
                                          provenance_line, results_table)
from fusionlab.experiments.spec import Experiment
from fusionlab.experiments.stats import mean_interval, paired_gain, shared_seeds
from fusionlab.notebook import glue, markdown_table


def stored_runs(results: dict | None, variant: str) -> list[dict]:
    """The stored runs of ``variant``, in the file's order (an empty list without results or
    without runs of it). Each run holds ``seed``, the metrics (``miou``, ``iou``, ...),
    ``final_loss`` and, when stored, ``history``."""
    return [r for r in (results or {}).get("runs", []) if r["variant"] == variant]


def run_histories(results: dict | None, variant: str) -> list[list[dict]]:
    """The training histories (``TrainResult.history``: ``{"step", "loss"}`` per logged step)
    of ``variant``'s stored runs that hold one, a list per seed in the file's order."""
    return [r["history"] for r in stored_runs(results, variant) if "history" in r]


def seed_mean(results: dict | None, variant: str, seeds: Iterable[int] | None = None,
              metric: str = "miou") -> float | None:
    """``variant``'s ``metric`` (a fraction) averaged over its stored runs of ``seeds`` (all
    its seeds when ``None``); ``None`` when no such run is stored."""
    keep = None if seeds is None else set(seeds)
    values = [r[metric] for r in stored_runs(results, variant)
              if keep is None or r["seed"] in keep]
    return float(np.mean(values)) if values else None


def mean_text(results: dict | None, variant: str, metric: str = "miou") -> str | None:
    """``variant``'s mean ``metric`` over its stored seeds for the prose, e.g. ``"0.512 (mean
    of 3 seeds)"``; ``None`` when it was not run."""
    summary = (results or {}).get("summary", {}).get(variant)
    if summary is None:
        return None
    return f"{summary[metric]['mean']:.3f} (mean of {len(summary['seeds'])} seeds)"


def pareto_points(results: dict | None, costs: dict[str, float],
                  metric: str = "miou") -> dict[str, tuple[float, float, float, float]]:
    """The points of ``viz.plot_pareto``: for each variant of ``costs`` that ``results`` ran,
    ``(cost, mean, low, high)``, the mean of ``metric`` over its seeds and its 95% interval in
    percent (``stats.mean_interval``); empty without results."""
    summary = (results or {}).get("summary", {})
    return {v: (cost, *(100 * x for x in mean_interval(results, v, metric)))
            for v, cost in costs.items() if v in summary}


def schedule_comparison(schedules: dict[int, dict], base: str, variant: str) -> dict:
    """One pair of variants at several schedule lengths (one results file per length), over
    the seeds every file ran for both: what chapter 4 reads to see whether a module only
    trains more slowly.

    Args:
        schedules: steps -> that schedule's results, shortest first.
        base, variant: the pair.

    Returns:
        ``seeds`` (sorted), ``miou``: steps -> {base, variant: mean mIoU in %} over those seeds,
        ``gap``: steps -> the paired mean gain (a fraction, all the file's shared seeds),
        ``table``: the Markdown table (mIoU, paired gain, final training losses per
        schedule), ``curves``: ``"VARIANT, N steps"`` -> the mean loss curve, for
        ``viz.plot_history``.

    Raises:
        ValueError: no seed run for both variants in every schedule.
    """
    seeds = sorted(set.intersection(*(set(shared_seeds(r, base, variant))
                                      for r in schedules.values())))
    if not seeds:
        raise ValueError(f"no seed ran both {base!r} and {variant!r} in every schedule "
                         f"({', '.join(map(str, schedules))} steps)")
    miou = {n: {v: 100 * seed_mean(r, v, seeds) for v in (base, variant)}
            for n, r in schedules.items()}
    rows = [[f"{n} steps", f"{miou[n][base]:.1f}", f"{miou[n][variant]:.1f}",
             gain_text(r, base, variant), f"{final_loss(r, base):.3f} / "
             f"{final_loss(r, variant):.3f}"] for n, r in schedules.items()]
    table = (f"Seeds {', '.join(map(str, seeds))}, mIoU in %:\n\n" + markdown_table(
        ["schedule", f"{base} mIoU", f"{variant} mIoU", f"{variant} vs {base}, paired",
         f"final training loss, {base} / {variant}"], rows))
    return {"seeds": seeds, "miou": miou, "table": table,
            "gap": {n: paired_gain(r, base, variant)["mean"] for n, r in schedules.items()},
            "curves": {f"{v}, {n} steps": loss_curve(r, v) for n, r in schedules.items()
                       for v in (base, variant)}}


def loss_curve(results: dict | None, variant: str) -> list[dict] | None:
    """``variant``'s training loss in its stored runs, averaged over the seeds, as a training
    history (``TrainResult.history``, what ``viz.plot_history`` draws): one ``{"step",
    "loss"}`` per logged step; ``None`` when no stored run of it holds a loss history.

    Raises:
        ValueError: runs whose histories were logged at different steps.
    """
    histories = run_histories(results, variant)
    if not histories:
        return None
    steps = [[h["step"] for h in history] for history in histories]
    if any(s != steps[0] for s in steps):
        raise ValueError(f"the runs of {variant!r} logged their losses at different steps")
    losses = np.array([[h["loss"] for h in history] for history in histories])  # (seeds, L)
    return [{"step": step, "loss": float(loss)} for step, loss in zip(steps[0], losses.mean(0))]


def final_loss(results: dict | None, variant: str, share: float = 0.1) -> float | None:
    """``variant``'s training loss at the end of its schedule: the mean over its seeds and
    over the last ``share`` of the steps (``loss_curve``); ``None`` without a stored history.

    Raises:
        ValueError: a ``share`` outside (0, 1]; see ``loss_curve``.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    curve = loss_curve(results, variant)
    if curve is None:
        return None
    last = curve[-1]["step"]
    return float(np.mean([h["loss"] for h in curve if h["step"] > (1 - share) * last]))


def reference_status(results: dict | None, variants: Iterable[str],
                     seeds: int | None = None) -> str:
    """How much of an experiment is stored, for the prose: ``"5 of the 8 variants; still to
    run: A, B, C"`` or ``"8 of the 8 variants, all of them"``; given the ``seeds`` each
    variant is meant to have, also those stored at fewer, e.g. ``"...; at fewer than 5 seeds
    so far: A (3), B (4)"``."""
    variants = list(variants)
    summary = (results or {}).get("summary", {})
    missing = [v for v in variants if v not in summary]
    short = [f"{v} ({len(summary[v]['seeds'])})" for v in variants
             if v in summary and seeds is not None and len(summary[v]["seeds"]) < seeds]
    return (f"{len(variants) - len(missing)} of the {len(variants)} variants"
            + (f"; still to run: {', '.join(missing)}" if missing else ", all of them")
            + (f"; at fewer than {seeds} seeds so far: {', '.join(short)}" if short else ""))


def reference_section(results: dict | None, variants: Iterable[str], command: str = "") -> str:
    """The Markdown that opens a chapter's reference results: the provenance sentence and the
    results table of ``variants`` (mean ± sample std over seeds, in percent, those not run
    left out); without results, a sentence saying so and, given, the ``command`` that makes
    them."""
    if results is None:
        return ("No reference results found" + (f"; they are made by `{command}`." if command
                                                  else ": run the command above to produce "
                                                       "them."))
    return provenance_line(results) + "\n\n" + results_table(results, variants=list(variants))


def glue_gains(results: dict | None, comparisons: dict[str, tuple],
               verdicts: bool = False) -> None:
    """Glue the paired gains a chapter's prose quotes: for each ``key -> (base, variant)`` or
    ``(base, variant, metric)`` of ``comparisons`` (metric ``"miou"`` by default), the gain as
    text (``gain_text``) under ``ref_KEY`` and, with ``verdicts``, what it says
    (``gain_verdict``) under ``verdict_KEY``. Missing results glue the texts that say so.

    Raises:
        ValueError: a comparison that is not (base, variant) or (base, variant, metric).
    """
    for key, comparison in comparisons.items():
        if len(comparison) not in (2, 3):
            raise ValueError(f"comparison {key!r}: (base, variant) or (base, variant, metric) "
                             f"expected, got {comparison!r}")
        glue(f"ref_{key}", gain_text(results, *comparison), display=False)
        if verdicts:
            glue(f"verdict_{key}", gain_verdict(results, *comparison), display=False)


def show_footing(experiment: Experiment) -> None:
    """Display ``experiment``'s pretrained comparisons on both footings, from scratch and on
    the ImageNet encoder (``footing_reading``'s table, from the stored results), and glue what
    they say for the prose as ``footing_reading``."""
    from IPython.display import Markdown, display

    table, reading = footing_reading(experiment)
    display(Markdown(table))
    glue("footing_reading", reading, display=False)
