"""Per-class charts: class frequencies, per-class values as bars or an annotated heat map, and
per-class gains by seed."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from fusionlab.viz.style import FIGURE_WIDTH, FONT_SIZE


def plot_class_frequencies(frequencies: np.ndarray, classes: Sequence[str],
                           palette: np.ndarray, ax=None):
    """Bar chart of the share of labelled pixels per class, in the class colours."""
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3))[1]
    order = np.argsort(frequencies)[::-1]
    ax.bar([classes[i] for i in order], 100 * frequencies[order],
           color=palette[order] / 255, edgecolor="black", linewidth=0.5)
    ax.set(ylabel="% of labelled pixels", yscale="log")
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_class_heatmap(values: np.ndarray, rows: Sequence[str], classes: Sequence[str],
                       thin_classes: Sequence[str] = (), label: str = "", fmt: str = "{:.2f}",
                       limits: tuple[float, float] | None = None, cmap: str = "magma", ax=None):
    """An annotated heat map of per-class values: one row per model, level or output, one
    column per class, each cell written out; thin classes are marked with an asterisk.

    Args:
        values: (R, K) values, in the units the cells are written in; NaN cells (a class absent
            from the labels) stay blank.
        rows: the R row names; classes: the K class names.
        label: the colour bar's label. fmt: how a cell is written (``"{:+.0f}"`` for gains).
        limits: the colour scale (low, high); ``None`` scales to the values.
        cmap: a Matplotlib colour map; the cell text is white on the darker half of the scale
            (on diverging maps, ``"RdBu_r"``, far from the middle).

    Raises:
        ValueError: values that are not (len(rows), len(classes)).
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(rows), len(classes)):
        raise ValueError(f"values of shape ({len(rows)}, {len(classes)}) expected for "
                         f"{len(rows)} rows and {len(classes)} classes, got {values.shape}")
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 0.5 * len(rows) + 1.6),
                            layout="constrained")[1]
    finite = values[np.isfinite(values)]
    low, high = limits or ((float(finite.min()), float(finite.max())) if finite.size else (0, 1))
    image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high, aspect="auto")
    diverging = cmap.startswith("RdBu")
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            position = (value - low) / ((high - low) or 1)               # 0..1 on the scale
            dark = abs(position - 0.5) > 0.3 if diverging else position < 0.6
            ax.text(col, row, fmt.format(value), ha="center", va="center",
                    fontsize=FONT_SIZE - 1, color="white" if dark else "black")
    names = [f"{c}*" if c in thin_classes else c for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.figure.colorbar(image, ax=ax, label=label)
    return ax


def plot_class_gains(gains: dict[str, np.ndarray], classes: Sequence[str],
                     thin_classes: Sequence[str] = (), base: str = "the baseline", ax=None):
    """A heat map of per-class IoU gains (in points): one row per model, one column per class,
    each cell annotated, red for a gain and blue for a loss on one symmetric scale; thin
    classes are marked with an asterisk (``plot_class_heatmap``).

    Args:
        gains: model -> (K,) gains as fractions (``experiments.stats.class_gains``); NaN cells
            (a class absent from the labels) stay blank.

    Raises:
        ValueError: no gains.
    """
    if not gains:
        raise ValueError("no model's gains to show: gains is empty")
    table = 100 * np.array([gains[m] for m in gains], dtype=float)  # (models, K)
    limit = float(np.nanmax(np.abs(table))) if np.isfinite(table).any() else 1.0
    return plot_class_heatmap(table, list(gains), classes, thin_classes,
                              f"IoU gain over {base} (points)", "{:+.0f}", (-limit, limit),
                              "RdBu_r", ax)


def plot_class_bars(series: dict[str, np.ndarray], classes: Sequence[str],
                    palette: np.ndarray | None = None, ylabel: str = "", title: str = "",
                    ax=None):
    """Per-class values as bars: one series in the class colours (``palette``) or grey-blue,
    several side by side in the colour cycle with a legend. Classes whose every value is NaN
    (absent from the labels) are left out.

    Args:
        series: name -> (K,) values, in the plot's units.
        classes: the K class names; palette: (K, 3) uint8 class colours, used for one series.

    Raises:
        ValueError: no series, or a series that is not (K,).
    """
    if not series:
        raise ValueError("no series to show: series is empty")
    table = np.array([np.asarray(v, dtype=float) for v in series.values()])   # (S, K)
    if table.shape[1:] != (len(classes),):
        raise ValueError(f"series of {len(classes)} values (one per class) expected, got "
                         f"shape {table.shape[1:]}")
    shown = ~np.isnan(table).all(0)                                            # (K,)
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3.0), layout="constrained")[1]
    x, width = np.arange(int(shown.sum())), 0.8 / len(table)
    for s, (name, row) in enumerate(zip(series, table)):
        colour = (palette[shown] / 255 if palette is not None and len(table) == 1
                  else f"C{s}")
        ax.bar(x + (s - (len(table) - 1) / 2) * width, row[shown], width, color=colour,
               edgecolor="black", linewidth=0.5, label=name)
    ax.set_xticks(x, [c for c, keep in zip(classes, shown) if keep], rotation=45, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    if len(table) > 1:
        ax.legend(fontsize=FONT_SIZE - 1)
    return ax


def plot_class_gain_bars(summary: dict, classes: Sequence[str], thin_classes: Sequence[str] = (),
                         ylabel: str = "IoU gain (points)", title: str = "", ax=None):
    """One model's per-class gains over another (in points): a bar per class for the mean over
    the seeds, its 95% interval as a whisker (two seeds or more), each seed's gain as a grey
    dot; thin classes hatched.

    Args:
        summary: ``experiments.stats.class_gain_summary``: ``gains`` (S, K) and ``mean``,
            ``low``, ``high`` (K,) as fractions; NaN (a class absent from the labels) draws
            nothing.
        classes: the K class names, in the order of the gains.

    Raises:
        ValueError: gains whose number of classes is not ``len(classes)``.
    """
    gains = np.asarray(summary["gains"], dtype=float)  # (S, K)
    if gains.ndim != 2 or gains.shape[1] != len(classes):
        raise ValueError(f"gains of shape (seeds, {len(classes)}) expected for "
                         f"{len(classes)} classes, got {gains.shape}")
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3.0), layout="constrained")[1]
    x = np.arange(len(classes))
    mean, low, high = (100 * np.asarray(summary[k], dtype=float) for k in ("mean", "low", "high"))
    bars = ax.bar(x, mean, color="C2", edgecolor="black", lw=0.5,
                  label=f"mean over {len(gains)} seed{'s' if len(gains) != 1 else ''}")
    for bar, name in zip(bars, classes):
        bar.set_hatch("//" if name in thin_classes else "")
    whisker = np.isfinite(low)
    if whisker.any():
        ax.errorbar(x[whisker], mean[whisker], yerr=[mean[whisker] - low[whisker],
                                                     high[whisker] - mean[whisker]],
                    fmt="none", ecolor="black", capsize=3, label="95% interval")
    for s, row in enumerate(100 * gains):
        ax.plot(x, row, ".", color="grey", label="one seed" if s == 0 else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set(ylabel=ylabel, title=title + (" (hatched: thin classes)" if thin_classes else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=FONT_SIZE - 1)
    return ax
