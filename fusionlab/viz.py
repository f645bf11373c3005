"""Pictures and widgets for the book: overlays, feature maps, loss curves, class legends and image
sliders that keep working in the static HTML page (precomputed views
switched on the client, with the first view as a picture for readers without JavaScript).

Figures are sized for the book's column: ``FIGURE_WIDTH`` inches at ``FIGURE_DPI`` dots per
inch is the width at which a figure is shown unscaled, so a font of ``FONT_SIZE`` points is
read at that size. ``use_book_style`` sets Matplotlib up accordingly.
"""

from __future__ import annotations

import base64
import html
import inspect
import textwrap
from typing import Sequence

import cv2
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch

from fusionlab import IGNORE_INDEX

FIGURE_WIDTH = 7.0
"""Inches: the book's text column at ``FIGURE_DPI`` (700 pixels). Wider figures are shrunk,
and their text with them."""
FIGURE_DPI = 100
"""Dots per inch of the book's figures (the inline backend's PNGs)."""
FONT_SIZE = 10
"""Points, for labels and titles; tick labels and legends use ``FONT_SIZE - 1``. Shown at
``FIGURE_WIDTH``, 9 points is the smallest text in any figure."""
METRIC_LABELS = {"miou": "mIoU", "thin_iou": "thin-class IoU", "boundary_f": "boundary F",
                 "pixel_accuracy": "pixel accuracy"}
"""How the book writes the metrics' keys on an axis."""


def use_book_style() -> None:
    """Set Matplotlib's defaults to the book's: figure width and resolution, font sizes, PNG
    output. Call once at the top of a chapter."""
    mpl.rcParams.update({
        "figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI,
        "figure.figsize": (FIGURE_WIDTH, 3.0),
        "font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE, "axes.labelsize": FONT_SIZE,
        "figure.titlesize": FONT_SIZE + 1, "xtick.labelsize": FONT_SIZE - 1,
        "ytick.labelsize": FONT_SIZE - 1, "legend.fontsize": FONT_SIZE - 1,
        "legend.title_fontsize": FONT_SIZE - 1,
    })


def colorize(mask: np.ndarray | torch.Tensor, palette: np.ndarray,
             ignore_colour: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Label map -> RGB picture in the class colours; ignored pixels get ``ignore_colour``.

    Shape:
        (H, W) labels -> (H, W, 3) uint8.

    Raises:
        ValueError: a label that is neither in the palette nor ``IGNORE_INDEX``.
    """
    mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.int64)
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = palette
    table[IGNORE_INDEX] = ignore_colour
    bad = (mask >= len(palette)) & (mask != IGNORE_INDEX)
    if bad.any() or (mask < 0).any():
        raise ValueError(f"labels must lie in 0..{len(palette) - 1} or be {IGNORE_INDEX}, "
                         f"got {np.unique(mask[bad | (mask < 0)])[:5].tolist()}")
    return table[mask]  # (H, W, 3)


def overlay(image: np.ndarray, mask, palette: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a colourised label map onto an image; ignored pixels keep the image.

    Shape:
        image (H, W, 3) uint8, mask (H, W) -> (H, W, 3) uint8.
    """
    colours = colorize(mask, palette)
    keep = (np.asarray(mask) == IGNORE_INDEX)[..., None]
    blended = (1 - alpha) * image + alpha * colours
    return np.where(keep, image, blended).astype(np.uint8)  # (H, W, 3)


def error_map(prediction, target) -> np.ndarray:
    """Where a prediction is wrong: red on wrong pixels, light grey on right ones, black where
    the label is ignored.

    Shape:
        prediction (H, W), target (H, W) labels -> (H, W, 3) uint8.

    Raises:
        ValueError: the two maps differ in shape.
    """
    p, t = (np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a) for a in (prediction,
                                                                                   target))
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} must have the same shape")
    out = np.full(p.shape + (3,), 225, np.uint8)  # (H, W, 3)
    out[(p != t) & (t != IGNORE_INDEX)] = (214, 39, 40)
    out[t == IGNORE_INDEX] = 0
    return out


def class_legend(target, classes: Sequence[str], palette: np.ndarray, ncol: int = 6,
                 loc: str = "lower center", **kwargs):
    """A legend of the class colours, on a Matplotlib figure (below the panels by default) or
    axes.

    Args:
        target: a ``Figure`` or an ``Axes``.
        classes: class names, one per palette row.
        palette: (K, 3) uint8 class colours.
        ncol: legend columns.
        kwargs: passed to ``legend``.

    Raises:
        ValueError: ``classes`` and ``palette`` of different lengths.
    """
    if len(classes) != len(palette):
        raise ValueError(f"need one colour per class, got {len(classes)} classes and "
                         f"{len(palette)} colours")
    handles = [Patch(facecolor=np.asarray(c) / 255, edgecolor="black", linewidth=0.5, label=n)
               for n, c in zip(classes, palette)]
    options = dict(loc=loc, ncol=ncol, frameon=False, fontsize=FONT_SIZE - 1,
                   handlelength=1.2, columnspacing=1.0)
    return target.legend(handles=handles, **{**options, **kwargs})


def top_channels(features: torch.Tensor, n: int = 8) -> tuple[list[int], np.ndarray]:
    """The ``n`` channels of a feature map with the largest mean absolute activation, each
    scaled to [0, 1] by its own minimum and maximum.

    Shape:
        (C, H, W) -> their indices, and (min(n, C), H, W) float maps in [0, 1].
    """
    f = features.detach().float().cpu()
    order = f.abs().mean((1, 2)).argsort(descending=True)[:n].tolist()
    maps = f[order].numpy()  # (n, H, W)
    low = maps.min((1, 2), keepdims=True)
    return order, (maps - low) / (maps.max((1, 2), keepdims=True) - low + 1e-8)


def feature_grid(features: torch.Tensor, n: int = 8, cell: tuple[int, int] | None = None
                 ) -> np.ndarray:
    """The ``n`` most active channels of one feature map (``top_channels``), tiled in a row
    and coloured with viridis.

    Args:
        features: (C, H, W) activations.
        n: channels shown.
        cell: (H', W') each map is resized to (nearest, so coarse stages look coarse).

    Shape:
        (C, H, W) -> RGB uint8 (H', n * W' + (n - 1) * 2, 3).
    """
    _, maps = top_channels(features, n)
    cell = cell or tuple(maps.shape[1:])
    tiles = []
    for x in maps:
        x = cv2.resize(x, cell[::-1], interpolation=cv2.INTER_NEAREST)  # (H', W')
        tiles.append((plt.cm.viridis(x)[..., :3] * 255).astype(np.uint8))
        tiles.append(np.full((cell[0], 2, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def map_panels(panels: Sequence[tuple], scales: dict | None = None, ncols: int | None = None,
               height: float = 2.2, title: str | None = None):
    """Maps side by side at the column's width; the panels of one scale group share one colour
    scale and one colourbar, so their colours can be compared.

    Args:
        panels: ``(title, picture, group)`` triples: an RGB uint8 (H, W, 3) picture is shown as
            it is (``group`` None); a 2-D map (H, W) is coloured by its ``group``'s scale.
        scales: group -> ``{"cmap": ..., "label": colourbar label, "limits": (low, high) or
            None for the group's own minimum and maximum, "symmetric": True to centre the
            scale on 0}``.
        ncols: panels per row (default: all in one row).
        height: figure height in inches.
        title: the figure's title.

    Shape:
        maps (H, W) or (H, W, 3) -> a figure ``FIGURE_WIDTH`` x ``height`` inches.

    Raises:
        ValueError: no panels, or a 2-D map whose group has no scale.
    """
    scales = scales or {}
    if not panels:
        raise ValueError("map_panels needs at least one panel")
    unknown = {g for _, m, g in panels if np.ndim(m) == 2 and g not in scales}
    if unknown:
        raise ValueError(f"2-D maps need a colour scale; no scale for groups {sorted(unknown)}")
    ncols = ncols or len(panels)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(FIGURE_WIDTH, height), squeeze=False,
                             layout="constrained")
    limits = {}
    for group, scale in scales.items():
        values = [np.asarray(m, dtype=float) for _, m, g in panels if g == group]
        if not values:
            continue
        low, high = scale.get("limits") or (min(v.min() for v in values),
                                            max(v.max() for v in values))
        if scale.get("symmetric"):
            high = max(abs(low), abs(high))
            low = -high
        limits[group] = (low, high)
    group_axes, group_image = {}, {}
    for ax, (name, picture, group) in zip(axes.flat, panels):
        picture = np.asarray(picture.detach().cpu() if isinstance(picture, torch.Tensor)
                             else picture)
        if picture.ndim == 2:
            low, high = limits[group]
            group_axes.setdefault(group, []).append(ax)
            group_image[group] = ax.imshow(picture, cmap=scales[group].get("cmap", "viridis"),
                                           vmin=low, vmax=high)
        else:
            ax.imshow(picture)
        ax.set_title(name, fontsize=FONT_SIZE - 1)
        ax.set_axis_off()
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    for group in limits:   # side by side at the right of all panels (never on top of another)
        fig.colorbar(group_image[group], ax=axes.ravel().tolist(), shrink=0.8, aspect=25,
                     label=scales[group].get("label", group))
    if title:
        fig.suptitle(title)
    return fig


def png_bytes(image: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> PNG file bytes."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return buf.tobytes()


class ImageSlider:
    """A slider over precomputed images, as displayed by ``image_slider``.

    Displaying it shows the widget and, for readers without JavaScript, its first view as a
    plain picture inside ``<noscript>`` (hidden wherever the widget can run).

    Attributes:
        widget: the ipywidgets ``VBox`` (slider, caption, images).
        fallback_html: the ``<noscript>`` picture of the first view.
    """

    def __init__(self, widget, fallback_html: str):
        self.widget = widget
        self.fallback_html = fallback_html

    def _ipython_display_(self):
        from IPython.display import HTML, display

        display(HTML(self.fallback_html))
        display(self.widget)


def image_slider(images: Sequence[np.ndarray], captions: Sequence[str], description: str = "",
                 width: int | None = None) -> ImageSlider:
    """A slider that flips between precomputed images, working in the static HTML book.

    The slider's value is ``jslink``-ed to the ``selected_index`` of two ``Stack`` widgets (the
    images and their captions), so the switch happens in the browser without a kernel. Make
    the images at ``FIGURE_WIDTH`` (e.g. with ``figure_image``) to show them unscaled.

    Args:
        images: RGB uint8 images (H, W, 3), one per view.
        captions: one text per view.
        description: the slider's label.
        width: display width in pixels (default: the image's own).

    Raises:
        ValueError: ``images`` and ``captions`` of different lengths, or none.
    """
    import ipywidgets as widgets

    if len(images) != len(captions) or not images:
        raise ValueError(f"need one caption per image, got {len(images)} images and "
                         f"{len(captions)} captions")
    layout = {"width": f"{width}px"} if width else {}
    pictures = widgets.Stack([widgets.Image(value=png_bytes(im), format="png", layout=layout)
                              for im in images], selected_index=0)
    texts = widgets.Stack([widgets.HTML(f"<b>{html.escape(c)}</b>") for c in captions],
                          selected_index=0)
    slider = widgets.IntSlider(0, 0, len(images) - 1, description=description,
                               readout=False, continuous_update=True)
    widgets.jslink((slider, "value"), (pictures, "selected_index"))
    widgets.jslink((slider, "value"), (texts, "selected_index"))
    first = base64.b64encode(png_bytes(images[0])).decode("ascii")
    fallback = (f'<noscript><figure class="slider-fallback"><img alt="{html.escape(captions[0])}"'
                f' src="data:image/png;base64,{first}"/><figcaption>{html.escape(captions[0])} '
                f"(first of {len(images)} views; the slider needs JavaScript)</figcaption>"
                f"</figure></noscript>")
    return ImageSlider(widgets.VBox([widgets.HBox([slider, texts]), pictures]), fallback)


def show_source(obj):
    """Display the library's own source of a class or function, syntax-highlighted (the same in
    Jupyter, Colab and the built book)."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def plot_history(histories: dict[str, list[dict]], ax=None):
    """Training loss against step, one line per run (``TrainResult.history``)."""
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 2.8))[1]
    for name, history in histories.items():
        # a short history (the smoke profile logs once or twice) still shows its points
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label=name,
                marker="o" if len(history) <= 10 else None, markersize=4)
    ax.set(xlabel="step", ylabel="training loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


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


def prediction_rows(images: Sequence[np.ndarray], targets: Sequence, predictions: dict,
                    palette: np.ndarray, classes: Sequence[str] | None = None,
                    errors: bool = False):
    """A figure at the column's width with one row per image: the image, its labels, then each
    model's prediction (and, with ``errors``, its error map beside it).

    Args:
        images: RGB uint8 (H, W, 3) images.
        targets: label maps (H, W).
        predictions: model name -> list of label maps (H, W), one per image.
        palette: (K, 3) uint8 class colours.
        classes: class names; when given, a legend of the class colours goes below.
        errors: add an ``error_map`` after each prediction (red: wrong pixels).

    Shape:
        images (H, W, 3), targets and predictions (H, W) -> a figure ``FIGURE_WIDTH`` wide.
    """
    cols = 2 + len(predictions) * (2 if errors else 1)
    h, w = np.asarray(images[0]).shape[:2]
    size = FIGURE_WIDTH / cols
    legend_rows = 0 if classes is None else int(np.ceil(len(classes) / 6))
    fig, axes = plt.subplots(len(images), cols, squeeze=False,
                             figsize=(FIGURE_WIDTH, len(images) * size * h / w + 0.45
                                      + 0.25 * legend_rows))
    for r, (image, target) in enumerate(zip(images, targets)):
        panels = [("image", image), ("labels", colorize(target, palette))]
        for name, p in predictions.items():
            panels.append((name, colorize(p[r], palette)))
            if errors:
                panels.append((f"{name}: errors", error_map(p[r], target)))
        for c, (title, picture) in enumerate(panels):
            axes[r, c].imshow(picture)
            axes[r, c].set_axis_off()
            if r == 0:   # wrapped to the panel's width (about 13 characters per inch at 9 pt)
                axes[r, c].set_title("\n".join(textwrap.wrap(title, max(6, int(13 * size)))),
                                     fontsize=FONT_SIZE - 1)
    fig.tight_layout(pad=0.3, rect=(0, 0.3 * legend_rows / fig.get_figheight(), 1, 1))
    if classes is not None:
        class_legend(fig, classes, palette)
    return fig


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


def plot_ablation_panels(results: dict, variants: Sequence[str], title: str,
                         metrics: Sequence[str] = ("miou", "thin_iou", "boundary_f")):
    """``plot_ablation`` of each of ``metrics``, one panel above the other on a shared x axis,
    under one ``title``.

    Returns:
        the figure (call ``plt.show()``).

    Raises:
        ValueError: no metrics.
    """
    if not metrics:
        raise ValueError("no metrics to plot")
    fig, axes = plt.subplots(len(metrics), 1, figsize=(FIGURE_WIDTH, 2.4 * len(metrics)),
                             sharex=True, squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        plot_ablation(results, variants, metric, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
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


def plot_class_gains(gains: dict[str, np.ndarray], classes: Sequence[str],
                     thin_classes: Sequence[str] = (), base: str = "the baseline", ax=None):
    """A heat map of per-class IoU gains (in points): one row per model, one column per class,
    each cell annotated, red for a gain and blue for a loss on one symmetric scale; thin
    classes are marked with an asterisk.

    Args:
        gains: model -> (K,) gains as fractions (``experiments.stats.class_gains``); NaN cells
            (a class absent from the labels) stay blank.

    Raises:
        ValueError: no gains.
    """
    if not gains:
        raise ValueError("no model's gains to show: gains is empty")
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 0.5 * len(gains) + 1.6))[1]
    table = 100 * np.array([gains[m] for m in gains], dtype=float)  # (models, K)
    limit = float(np.nanmax(np.abs(table))) if np.isfinite(table).any() else 1.0
    image = ax.imshow(table, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (row, col), value in np.ndenumerate(table):
        if np.isfinite(value):
            ax.text(col, row, f"{value:+.0f}", ha="center", va="center",
                    fontsize=FONT_SIZE - 1,
                    color="white" if abs(value) > 0.6 * limit else "black")
    names = [f"{c}*" if c in thin_classes else c for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(gains)), list(gains))
    ax.figure.colorbar(image, ax=ax, label=f"IoU gain over {base} (points)")
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


def figure_image(fig) -> np.ndarray:
    """Render a Matplotlib figure to an image and close it, e.g. to make the precomputed views
    of ``image_slider`` from ordinary plots.

    Shape:
        a figure of w x h inches -> (h * dpi, w * dpi, 3) uint8.
    """
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)
    plt.close(fig)
    return image
