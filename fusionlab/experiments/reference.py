"""What a chapter reads from its stored reference results, without indexing the raw JSON: the
runs of a variant, their loss curve and final training loss, what is still to run, and the
section that opens a chapter's reference results (provenance and table)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fusionlab.experiments.report import (footing_reading, gain_text, gain_verdict,
                                          provenance_line, results_table)
from fusionlab.experiments.spec import Experiment
from fusionlab.notebook import glue


def stored_runs(results: dict | None, variant: str) -> list[dict]:
    """The stored runs of ``variant``, in the file's order (an empty list without results or
    without runs of it). Each run holds ``seed``, the metrics (``miou``, ``iou``, ...),
    ``final_loss`` and, when stored, ``history``."""
    return [r for r in (results or {}).get("runs", []) if r["variant"] == variant]


def loss_curve(results: dict | None, variant: str) -> list[dict] | None:
    """``variant``'s training loss in its stored runs, averaged over the seeds, as a training
    history (``TrainResult.history``, what ``viz.plot_history`` draws): one ``{"step",
    "loss"}`` per logged step; ``None`` when no stored run of it holds a loss history.

    Raises:
        ValueError: runs whose histories were logged at different steps.
    """
    runs = [r for r in stored_runs(results, variant) if "history" in r]
    if not runs:
        return None
    steps = [[h["step"] for h in r["history"]] for r in runs]
    if any(s != steps[0] for s in steps):
        raise ValueError(f"the runs of {variant!r} logged their losses at different steps")
    losses = np.array([[h["loss"] for h in r["history"]] for r in runs])  # (seeds, L)
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


def reference_status(results: dict | None, variants: Iterable[str]) -> str:
    """How much of an experiment is stored, for the prose: ``"5 of the 8 variants; still to
    run: A, B, C"`` or ``"8 of the 8 variants, all of them"``."""
    variants = list(variants)
    summary = (results or {}).get("summary", {})
    missing = [v for v in variants if v not in summary]
    return (f"{len(variants) - len(missing)} of the {len(variants)} variants"
            + (f"; still to run: {', '.join(missing)}" if missing else ", all of them"))


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


def glue_gains(results: dict | None, comparisons: dict[str, tuple], verdicts: bool = False) -> None:
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
