"""What a chapter reads from its stored reference results, without indexing the raw JSON: the
runs of a variant, their loss curve and final training loss, what is still to run, and the
section that opens a chapter's reference results (provenance and table)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fusionlab.experiments.report import provenance_line, results_table


def stored_runs(results: dict | None, variant: str) -> list[dict]:
    """The stored runs of ``variant``, in the file's order (an empty list without results or
    without runs of it). Each run holds ``seed``, the metrics (``miou``, ``iou``, ...),
    ``final_loss`` and, when stored, ``history``."""
    return [r for r in (results or {}).get("runs", []) if r["variant"] == variant]


def loss_curve(results: dict | None, variant: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``variant``'s training loss in its stored runs, averaged over the seeds: steps (L,) and
    mean loss (L,); ``None`` when no stored run of it holds a loss history.

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
    return np.array(steps[0]), losses.mean(0)


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
    steps, loss = curve
    return float(loss[steps > (1 - share) * steps[-1]].mean())


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
