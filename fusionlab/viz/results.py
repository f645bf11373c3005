"""Charts of results: training losses, the reference ablations (mean ± std over seeds, each seed
a dot), learning curves, the Pareto front of accuracy against cost, and each output of one model
scored on its own."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from fusionlab.viz.style import FIGURE_WIDTH, METRIC_LABELS


def plot_history(histories: dict[str, list[dict] | list[list[dict]]], ax=None):
    """Training loss against step, one line per run (``TrainResult.history``).

    Args:
        histories: name -> one run's history, or a list of runs' histories (e.g. one per
            seed, ``experiments.reference.run_histories``), drawn in one colour under one
            legend entry.
    """
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 2.8))[1]
    for i, (name, runs) in enumerate(histories.items()):
        runs = runs if runs and isinstance(runs[0], list) else [runs]
        for j, history in enumerate(runs):
            # a short history (the smoke profile logs once or twice) still shows its points
            ax.plot([h["step"] for h in history], [h["loss"] for h in history],
                    label=name if j == 0 else None, color=f"C{i}", lw=1 if len(runs) > 1 else None,
                    marker="o" if len(history) <= 10 else None, markersize=4)
    ax.set(xlabel="step", ylabel="training loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_fusion_levels(results: dict, metric: str = "miou", ax=None):
    """Reference results of the fusion-levels experiment: ``metric`` (mean ± sample std over
    seeds) against the number of fused levels, one line per fusion type; the ``c5`` variant
    (no fusion) starts every line."""
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3))[1]
    summary = results["summary"]
    labels = ["c5", "c4-c5", "c3-c5", "c2-c5"]
    for kind, marker in (("FPN", "o"), ("UNet", "s")):
        names = ["c5"] + [f"{kind} {lab}" for lab in labels[1:]]
        present = [(i, summary[n]) for i, n in enumerate(names) if n in summary]
        ax.errorbar([i for i, _ in present], [s[metric]["mean"] for _, s in present],
                    yerr=[s[metric]["std"] for _, s in present], marker=marker, capsize=3,
                    label=f"{kind} ({'add' if kind == 'FPN' else 'concat'})")
    ax.set_xticks(range(4), labels)
    ax.set(xlabel="fused levels", ylabel=METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_ablation(results: dict, variants: Sequence[str], metric: str = "miou", ax=None):
    """Reference results of an ablation: ``metric`` (mean ± sample std over seeds, and each
    seed as a dot) for ``variants`` in the given order; variants not in the results are
    skipped."""
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3))[1]
    present = [v for v in variants if v in results["summary"]]
    summary = results["summary"]
    x = np.arange(len(present))
    ax.errorbar(x, [summary[v][metric]["mean"] for v in present],
                yerr=[summary[v][metric]["std"] for v in present], marker="o", capsize=3,
                label="mean ± std")
    if metric in ("miou", "boundary_f"):
        for i, v in enumerate(present):
            seeds = [r[metric] for r in results["runs"] if r["variant"] == v]
            ax.plot([i] * len(seeds), seeds, ".", color="grey", alpha=0.7,
                    label="one seed" if i == 0 else None)
    ax.set_xticks(x, present, rotation=20, ha="right")
    ax.set(ylabel=METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def _metric_panels(draw, title: str, metrics: Sequence[str]):
    """One panel per metric, above each other on a shared x axis under one ``title``;
    ``draw(metric, ax)`` fills a panel. Returns the figure.

    Raises:
        ValueError: no metrics.
    """
    if not metrics:
        raise ValueError("no metrics to plot")
    fig, axes = plt.subplots(len(metrics), 1, figsize=(FIGURE_WIDTH, 2.4 * len(metrics)),
                             sharex=True, squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        draw(metric, ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_ablation_panels(results: dict, variants: Sequence[str], title: str,
                         metrics: Sequence[str] = ("miou", "thin_iou", "boundary_f")):
    """``plot_ablation`` of each of ``metrics``, one panel above the other on a shared x axis,
    under one ``title``.

    Returns:
        the figure (call ``plt.show()``).

    Raises:
        ValueError: no metrics.
    """
    return _metric_panels(lambda metric, ax: plot_ablation(results, variants, metric, ax=ax),
                          title, metrics)


def plot_fusion_level_panels(results: dict, title: str,
                             metrics: Sequence[str] = ("miou", "thin_iou", "boundary_f")):
    """``plot_fusion_levels`` of each of ``metrics``, one panel above the other on a shared x
    axis (labelled under the bottom one), the legend in the top one, under one ``title``.

    Returns:
        the figure (call ``plt.show()``).

    Raises:
        ValueError: no metrics.
    """
    fig = _metric_panels(lambda metric, ax: plot_fusion_levels(results, metric, ax=ax), title,
                         metrics)
    for ax in fig.axes[1:]:
        ax.get_legend().remove()
    for ax in fig.axes[:-1]:
        ax.set_xlabel("")
    return fig


def plot_learning_curves(curves: dict[str, dict[int, dict[int, float]]], ax=None):
    """Learning curves: the metric (in percent) against the training steps of each schedule,
    one line per curve (its mean over seeds, each seed as a dot), steps on a log axis.

    Args:
        curves: label -> ``experiments.curves.learning_curve(...)`` (steps -> seed -> value).
    """
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3))[1]
    for label, curve in curves.items():
        steps = list(curve)
        line, = ax.plot(steps, [100 * np.mean(list(curve[s].values())) for s in steps],
                        marker="o", label=f"{label} (mean)")
        for s in steps:
            ax.plot([s] * len(curve[s]), [100 * v for v in curve[s].values()], ".",
                    color=line.get_color(), alpha=0.5)
    ax.set_xscale("log", base=2)
    ticks = sorted({s for curve in curves.values() for s in curve})
    ax.set_xticks(ticks, [str(s) for s in ticks])
    ax.minorticks_off()
    ax.set(xlabel="training steps (each schedule a run of its own)", ylabel="mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_pareto(points: dict[str, tuple[float, float, float, float]], xlabel: str, ax=None,
                log_x: bool = False):
    """mIoU against a cost, one point per model with its interval as a bar, so that a reader
    sees which models buy accuracy with compute; the models no other beats on both axes (the
    Pareto front) are joined by a dotted line.

    Args:
        points: model -> (cost, mean mIoU %, interval low %, interval high %); a NaN interval
            (one seed) draws no bar.
        xlabel: the cost's name and unit.
    """
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3.2))[1]
    for i, (label, (x, mean, low, high)) in enumerate(points.items()):
        yerr = [[mean - low], [high - mean]] if np.isfinite(low) else None
        ax.errorbar(x, mean, yerr=yerr, marker="os^vD<>ph*"[i % 10], color=f"C{i % 10}",
                    capsize=3, ls="none", label=label)
    xy = {label: (p[0], p[1]) for label, p in points.items()}
    front = sorted((x, y) for label, (x, y) in xy.items()
                   if not any((x2 <= x and y2 > y) or (x2 < x and y2 >= y)
                              for other, (x2, y2) in xy.items() if other != label))
    if len(front) > 1:
        ax.plot(*zip(*front), color="grey", ls=":", lw=1, zorder=0)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="mIoU (%)")
    ax.grid(alpha=0.3)
    return ax


def plot_output_scores(per_output: dict[str, dict], outputs: dict[str, str],
                       metrics: Sequence[str] = ("miou",), colours: Sequence | None = None):
    """Bars of a validation metric for each output of one model (its main prediction and its
    auxiliary heads, each scored on its own), one panel per metric.

    Args:
        per_output: output name -> its metrics (``evaluation.evaluate_outputs``).
        outputs: bar label -> output name, in the order to draw.
        metrics: keys of the metrics, e.g. ``("miou", "boundary_f")``.
        colours: one Matplotlib colour per bar (default: all ``"C0"``).

    Returns:
        The figure.

    Raises:
        KeyError: an output or a metric that ``per_output`` does not hold.
    """
    missing = [n for n in outputs.values() if n not in per_output]
    if missing:
        raise KeyError(f"outputs {missing} not scored: per_output holds {list(per_output)}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(FIGURE_WIDTH, 2.8), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        name = METRIC_LABELS.get(metric, metric)
        ax.bar(list(outputs), [per_output[n][metric] for n in outputs.values()],
               color=colours or "C0")
        ax.set(ylabel=f"validation {name}",
               title=f"validation {name} of each output" if len(metrics) > 1 else "")
        ax.tick_params(axis="x", rotation=20)
        ax.grid(axis="y", alpha=0.3)
    return fig
