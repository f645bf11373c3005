"""Pictures and widgets for the book: overlays, feature maps, loss curves, class legends, module
schematics, and image sliders that keep working in the static HTML page (precomputed views
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
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

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


# --- schematics ---------------------------------------------------------------------------

_FILL = {"feature": "#dbe9f6", "layer": "#fde8c8", "op": "white", "output": "#d9f0d3",
         "loss": "#fbdada", "muted": "#eeeeee"}


class Diagram:
    """A block diagram drawn with Matplotlib, in inches: boxes (feature maps, layers, outputs,
    losses), operator circles (+, ×, C for concatenation) and arrows between them.

    The axes fill the figure and one data unit is one inch, so positions and sizes read as
    they print: a figure ``width`` x ``height`` inches, text in points (``FONT_SIZE``). A box
    is as wide as its text needs.

    Args:
        width, height: figure size in inches (``width`` at most ``FIGURE_WIDTH``).

    Raises:
        ValueError: a width over ``FIGURE_WIDTH`` or a non-positive size.
    """

    def __init__(self, width: float = FIGURE_WIDTH, height: float = 2.5):
        if not 0 < width <= FIGURE_WIDTH or height <= 0:
            raise ValueError(f"a diagram is at most {FIGURE_WIDTH} in wide and of positive "
                             f"size, got {width} x {height} in")
        self.fig = plt.figure(figsize=(width, height), dpi=FIGURE_DPI)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set(xlim=(0, width), ylim=(0, height))
        self.ax.set_axis_off()
        self.nodes: dict[str, mpl.patches.Patch] = {}
        self._renderer = self.fig.canvas.get_renderer()

    def _text_size(self, text: str, size: float) -> tuple[float, float]:
        """Width and height in inches of ``text`` at ``size`` points."""
        t = self.ax.text(0, 0, text, fontsize=size)
        box = t.get_window_extent(self._renderer)
        t.remove()
        return box.width / self.fig.dpi, box.height / self.fig.dpi

    def box(self, key: str, x: float, y: float, text: str, role: str = "layer",
            size: float = FONT_SIZE, min_width: float = 0.0):
        """A rounded box centred at (x, y) inches, sized to its text.

        Args:
            key: name for ``arrow``.
            role: ``feature``, ``layer``, ``output``, ``loss`` or ``muted`` (its colour).

        Raises:
            ValueError: a key already used or an unknown role.
        """
        if key in self.nodes:
            raise ValueError(f"diagram node {key!r} exists already")
        if role not in _FILL or role == "op":
            raise ValueError(f"role must be one of feature, layer, output, loss, muted; "
                             f"got {role!r}")
        w, h = self._text_size(text, size)
        w, h = max(w + 0.16, min_width), h + 0.14
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                               boxstyle="round,pad=0,rounding_size=0.05", facecolor=_FILL[role],
                               edgecolor="#b22222" if role == "loss" else "#555555",
                               linewidth=1.0, linestyle="--" if role == "loss" else "-")
        self.ax.add_patch(patch)
        self.ax.text(x, y, text, fontsize=size, ha="center", va="center",
                     color="#777777" if role == "muted" else "black")
        self.nodes[key] = patch
        return patch

    def op(self, key: str, x: float, y: float, symbol: str):
        """An operator circle at (x, y): ``+`` (sum), ``×`` (product) or ``C`` (concatenation).

        Raises:
            ValueError: a key already used or another symbol.
        """
        if key in self.nodes:
            raise ValueError(f"diagram node {key!r} exists already")
        if symbol not in ("+", "×", "C"):
            raise ValueError(f"symbol must be '+', '×' or 'C', got {symbol!r}")
        patch = Circle((x, y), 0.13, facecolor="white", edgecolor="#555555", linewidth=1.0)
        self.ax.add_patch(patch)
        self.ax.text(x, y, symbol, fontsize=FONT_SIZE + 1, ha="center", va="center_baseline")
        self.nodes[key] = patch
        return patch

    def arrow(self, start: str, end: str, label: str | None = None, bend: str | None = None,
              dashed: bool = False, label_offset: tuple[float, float] | None = None):
        """An arrow from node ``start`` to node ``end``, clipped at their outlines.

        Args:
            label: text at the arrow's middle (``FONT_SIZE - 1`` points), moved by
                ``label_offset`` inches (default: 0.13 in to the upper side of the line).
            bend: None for a straight arrow; ``"hv"`` goes horizontally then vertically,
                ``"vh"`` vertically then horizontally.
            dashed: a dashed line (e.g. a supervision signal).

        Raises:
            ValueError: an unknown node or bend.
        """
        missing = [k for k in (start, end) if k not in self.nodes]
        if missing:
            raise ValueError(f"unknown diagram node(s) {missing}; have {sorted(self.nodes)}")
        if bend not in (None, "hv", "vh"):
            raise ValueError(f"bend must be None, 'hv' or 'vh', got {bend!r}")
        a, b = (self._centre(self.nodes[k]) for k in (start, end))
        style = {None: "arc3", "hv": "angle,angleA=0,angleB=90,rad=0",
                 "vh": "angle,angleA=90,angleB=0,rad=0"}[bend]
        patch = FancyArrowPatch(a, b, patchA=self.nodes[start], patchB=self.nodes[end],
                                arrowstyle="-|>", mutation_scale=11, connectionstyle=style,
                                color="#333333", linewidth=1.1,
                                linestyle="--" if dashed else "-", shrinkA=1, shrinkB=1)
        self.ax.add_patch(patch)
        if label:
            # the middle of the straight arrow, or of its horizontal segment
            middle = {None: ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2),
                      "hv": ((a[0] + b[0]) / 2, a[1]), "vh": ((a[0] + b[0]) / 2, b[1])}[bend]
            if label_offset is None:
                dx, dy = (b[0] - a[0], b[1] - a[1]) if bend is None else (1.0, 0.0)
                normal = np.array([-dy, dx]) / np.hypot(dx, dy)
                label_offset = 0.13 * (normal if normal[1] >= 0 else -normal)
            self.text(middle[0] + label_offset[0], middle[1] + label_offset[1], label)
        return patch

    def text(self, x: float, y: float, text: str, size: float = FONT_SIZE - 1, **kwargs):
        """Free text centred at (x, y) inches."""
        return self.ax.text(x, y, text, fontsize=size, ha=kwargs.pop("ha", "center"),
                            va=kwargs.pop("va", "center"), **kwargs)

    @staticmethod
    def _centre(patch) -> tuple[float, float]:
        if isinstance(patch, Circle):
            return patch.center
        return patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2


def schematic_baselines():
    """The three classic decoders side by side: FCN (no fusion), UNet (concatenation), FPN
    (addition), each fed by the encoder stages c2..c5 (strides 4..32).

    Sources: Long et al., CVPR 2015 (FCN-32s); Ronneberger et al., MICCAI 2015; Lin et al.,
    CVPR 2017. Drawn as fusionlab builds them (``FCN``, ``UNet``, ``FPN``): bilinear ``Up``.
    """
    d = Diagram(FIGURE_WIDTH, 3.6)
    rows = {"c5": 2.75, "c4": 2.1, "c3": 1.45, "c2": 0.8}
    for p, (name, title) in enumerate((("fcn", "FCN: no fusion"),
                                       ("unet", "UNet: concatenate"), ("fpn", "FPN: add"))):
        x0 = p * FIGURE_WIDTH / 3
        d.text(x0 + 1.15, 3.35, title, size=FONT_SIZE, weight="bold")
        for lv, y in rows.items():
            used = name != "fcn" or lv == "c5"
            d.box(f"{name}{lv}", x0 + 0.3, y, lv, role="feature" if used else "muted")
        d.box(f"{name}out", x0 + 1.45, 0.22, "head, Up → logits", role="output")
        if name == "fcn":
            d.box("fcnhead", x0 + 1.45, rows["c5"], "1×1 conv", min_width=0.9)
            d.box("fcnup", x0 + 1.45, 1.45, "Up ×32", min_width=0.9)
            d.arrow("fcnc5", "fcnhead")
            d.arrow("fcnhead", "fcnup")
            d.arrow("fcnup", "fcnout")
            continue
        d.box(f"{name}d5", x0 + 1.75, rows["c5"], "3×3 conv")
        d.arrow(f"{name}c5", f"{name}d5")
        above = f"{name}d5"
        for lv in ("c4", "c3", "c2"):
            y = rows[lv]
            d.op(f"{name}op{lv}", x0 + 1.0, y, "+" if name == "fpn" else "C")
            d.arrow(f"{name}{lv}", f"{name}op{lv}", label="1×1" if name == "fpn" else None)
            d.box(f"{name}d{lv}", x0 + 1.75, y, "3×3 conv" if name == "fpn" else "two 3×3")
            d.arrow(above, f"{name}op{lv}", label="Up" if lv == "c4" else None)
            d.arrow(f"{name}op{lv}", f"{name}d{lv}")
            above = f"{name}d{lv}"
        d.arrow(above, f"{name}out")
    return d.fig


def schematic_gcn():
    """The GCN block and the boundary refinement (BR) block, and how the GCN decoder fuses a
    stage: s_l = BR(BR(GCN(x_l)) + Deconv(s_{l+1})).

    Source: Peng et al., "Large Kernel Matters", CVPR 2017, Fig. 2(b), 2(c) and 2(a).
    """
    d = Diagram(FIGURE_WIDTH, 2.6)
    d.text(0.05, 2.4, "GCN block: two separable branches", weight="bold", ha="left")
    d.box("x", 0.35, 1.35, "$x_l$", role="feature")
    d.box("a1", 1.3, 1.85, "k×1 conv")
    d.box("a2", 2.35, 1.85, "1×k conv")
    d.box("b1", 1.3, 0.85, "1×k conv")
    d.box("b2", 2.35, 0.85, "k×1 conv")
    d.op("sum", 3.15, 1.35, "+")
    d.arrow("x", "a1", bend="vh")
    d.arrow("x", "b1", bend="vh")
    d.arrow("a1", "a2")
    d.arrow("b1", "b2")
    d.arrow("a2", "sum", bend="hv")
    d.arrow("b2", "sum", bend="hv")
    d.text(3.75, 2.4, "BR block: a residual correction", weight="bold", ha="left")
    d.box("in", 3.95, 1.35, "K scores", role="feature")
    d.box("r1", 4.85, 1.35, "3×3 conv")
    d.box("relu", 5.6, 1.35, "ReLU")
    d.box("r2", 6.45, 1.35, "3×3 conv")
    d.op("res", 6.45, 0.6, "+")
    d.arrow("sum", "in")
    d.arrow("in", "r1")
    d.arrow("r1", "relu")
    d.arrow("relu", "r2")
    d.arrow("r2", "res")
    d.arrow("in", "res", bend="vh", label="identity")
    d.text(3.5, 0.15, r"decoder, for l = 4, 3, 2:   $s_l = \mathrm{BR}(\mathrm{BR}(\mathrm{GCN}"
           r"(x_l)) + \mathrm{Deconv}(s_{l+1}))$,   $s_5 = \mathrm{BR}(\mathrm{GCN}(x_5))$")
    return d.fig


def schematic_seb():
    """The semantic embedding branch for the lowest level: every higher level, through its own
    3 × 3 convolution and upsampled, multiplies into x_2.

    Source: Zhang et al., "ExFuse", ECCV 2018, Sec. 3.1 and Fig. 4:
    x~_l = x_l · Π_{s > l} Up(Conv3x3(x_s)).
    """
    d = Diagram(FIGURE_WIDTH, 2.6)
    d.box("x2", 4.6, 2.3, "$x_2$ (stride 4)", role="feature")
    d.op("prod", 4.6, 1.3, "×")
    for lv, y in (("c3", 1.9), ("c4", 1.3), ("c5", 0.7)):
        d.box(f"x{lv}", 0.75, y, f"$x_{lv[1]}$ (stride {2 ** int(lv[1])})", role="feature")
        d.box(f"conv{lv}", 2.1, y, "3×3 conv")
        d.box(f"up{lv}", 3.3, y, "Up to $x_2$ size")
        d.arrow(f"x{lv}", f"conv{lv}")
        d.arrow(f"conv{lv}", f"up{lv}")
        d.arrow(f"up{lv}", "prod")
    d.arrow("x2", "prod")
    d.box("out", 6.2, 1.3, r"$\tilde{x}_2$ → GCN", role="output")
    d.arrow("prod", "out")
    d.text(3.5, 0.18, "the masks are signed (no sigmoid); every higher level multiplies in, "
           "not only the next one")
    return d.fig


def schematic_ecre():
    """Explicit channel resolution embedding: the top score map is upsampled by a sub-pixel
    convolution (conv to K·r² channels, pixel shuffle by r = 2) and that map is supervised by
    an auxiliary loss before it joins the next stage.

    Source: Zhang et al., "ExFuse", ECCV 2018, Sec. 3.2 and Fig. 5; sub-pixel convolution:
    Shi et al., CVPR 2016.
    """
    d = Diagram(FIGURE_WIDTH, 2.3)
    d.box("s5", 0.7, 1.5, "$s_5$: K, H/32", role="feature")
    d.box("conv", 2.05, 1.5, "3×3 conv → K·r²")
    d.box("shuffle", 3.55, 1.5, "pixel shuffle r=2")
    d.box("up", 4.95, 1.5, "K, H/16", role="feature")
    d.op("sum", 5.85, 1.5, "+")
    d.box("next", 6.55, 1.5, "BR → $s_4$", role="output")
    d.box("t4", 5.85, 2.15, r"$t_4 = \mathrm{BR}(\mathrm{GCN}(x_4))$", role="feature")
    d.box("loss", 4.95, 0.55, "auxiliary loss vs. labels", role="loss")
    d.arrow("s5", "conv")
    d.arrow("conv", "shuffle")
    d.arrow("shuffle", "up")
    d.arrow("up", "sum")
    d.arrow("t4", "sum")
    d.arrow("sum", "next")
    d.arrow("up", "loss", dashed=True)
    d.text(2.0, 0.55, "this sub-pixel path replaces the deconvolution of $s_5$")
    return d.fig


def schematic_dap(k: int = 3):
    """Densely adjacent prediction: the final score map is widened to K·k² channels, one group
    of K per offset (l, m); group (l, m) is read at the neighbour (i + l - ⌊k/2⌋,
    j + m - ⌊k/2⌋), so the k² neighbours of (i, j) vote for it, and the votes are averaged.

    Source: Zhang et al., "ExFuse", ECCV 2018, Sec. 3.2 and Fig. 6.

    Raises:
        ValueError: an even or non-positive ``k``.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd number, got {k}")
    d = Diagram(FIGURE_WIDTH, 2.6)
    d.box("s", 0.65, 1.9, "$s_2$: K, H/4", role="feature")
    d.box("wide", 2.1, 1.9, f"1×1 conv → K·{k * k}")
    d.box("shift", 2.1, 1.1, f"group (l, m) read at offset (l−{k // 2}, m−{k // 2})",
          min_width=1.0)
    d.box("mean", 2.1, 0.35, f"mean of the {k * k} votes → K", role="output")
    d.arrow("s", "wide")
    d.arrow("wide", "shift")
    d.arrow("shift", "mean")
    cell, x0, y0 = 1.9 / k, 4.4, 0.3
    centre = (x0 + cell * (k // 2 + 0.5), y0 + cell * (k // 2 + 0.5))
    for i in range(k):
        for j in range(k):
            is_centre = i == k // 2 and j == k // 2
            d.ax.add_patch(Rectangle((x0 + j * cell, y0 + (k - 1 - i) * cell), cell, cell,
                                     facecolor="#fde8c8" if is_centre else "#dbe9f6",
                                     edgecolor="#555555"))
            cx, cy = x0 + (j + 0.5) * cell, y0 + (k - 1 - i + 0.5) * cell
            if is_centre:
                d.text(cx, cy, "(i, j)", size=FONT_SIZE)
                continue
            dx, dy = centre[0] - cx, centre[1] - cy
            d.text(cx - 0.3 * np.sign(dx) * cell, cy - 0.3 * np.sign(dy) * cell, f"({i}, {j})")
            d.ax.add_patch(FancyArrowPatch((cx + 0.05 * dx, cy + 0.05 * dy),
                                           (cx + 0.5 * dx, cy + 0.5 * dy),
                                           arrowstyle="-|>", mutation_scale=10,
                                           color="#333333", linewidth=1.0))
    d.text(x0 + cell * k / 2, y0 + cell * k + 0.15,
           f"neighbour (l, m) votes for (i, j) with its group (l, m)")
    return d.fig
