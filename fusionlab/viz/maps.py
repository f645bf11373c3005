"""Label maps and feature maps as pictures: class colours, overlays, error maps, class legends,
the most active channels, panels of maps on shared scales, and rows of images with their labels
and each model's prediction."""

from __future__ import annotations

import textwrap
from typing import Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch

from fusionlab import IGNORE_INDEX
from fusionlab.datasets.base import denormalise
from fusionlab.viz.style import FIGURE_WIDTH, FONT_SIZE


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


def prediction_rows(images: Sequence[np.ndarray], targets: Sequence, predictions: dict,
                    palette: np.ndarray, classes: Sequence[str] | None = None,
                    errors: bool = False):
    """A figure at the column's width with one row per image: the image, its labels, then each
    model's prediction (and, with ``errors``, its error map beside it).

    Args:
        images: RGB uint8 (H, W, 3) images, or a batch of normalised model inputs
            (N, 3, H, W), shown ``denormalise``d.
        targets: label maps (H, W), e.g. an (N, H, W) tensor.
        predictions: model name -> label maps (H, W), one per image, e.g. an (N, H, W)
            tensor of predicted classes.
        palette: (K, 3) uint8 class colours.
        classes: class names; when given, a legend of the class colours goes below.
        errors: add an ``error_map`` after each prediction (red: wrong pixels).

    Shape:
        images (H, W, 3) or (N, 3, H, W), targets and predictions (H, W) -> a figure
        ``FIGURE_WIDTH`` wide.
    """
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        images = [denormalise(image) for image in images]  # N x (H, W, 3) uint8
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
