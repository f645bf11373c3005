"""Pictures and widgets for the book: overlays, feature maps, loss curves, and image viewers
that keep working in the static HTML page (precomputed views switched on the client)."""

from __future__ import annotations

import inspect
from typing import Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch

from fusionlab import IGNORE_INDEX


def colorize(mask: np.ndarray | torch.Tensor, palette: np.ndarray,
             ignore_colour: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Label map (H, W) -> RGB uint8 (H, W, 3); ignored pixels get ``ignore_colour``.

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
    """Blend a colourised label map onto an RGB uint8 image (H, W, 3); ignored pixels keep the
    image."""
    colours = colorize(mask, palette)
    keep = (np.asarray(mask) == IGNORE_INDEX)[..., None]
    blended = (1 - alpha) * image + alpha * colours
    return np.where(keep, image, blended).astype(np.uint8)  # (H, W, 3)


def feature_grid(features: torch.Tensor, n: int = 8, cell: tuple[int, int] | None = None
                 ) -> np.ndarray:
    """The ``n`` most active channels of one feature map, each normalised to [0, 1], tiled in a
    row and coloured with viridis.

    Args:
        features: (C, H, W) activations.
        n: channels shown (the ones with the largest mean absolute activation).
        cell: (H', W') each map is resized to (nearest, so coarse stages look coarse).

    Shape:
        (C, H, W) -> RGB uint8 (H', n * W' + (n - 1) * 2, 3).
    """
    f = features.detach().float().cpu()
    order = f.abs().mean((1, 2)).argsort(descending=True)[:n]
    cell = cell or tuple(f.shape[1:])
    tiles = []
    for c in order:
        x = f[c].numpy()
        x = (x - x.min()) / (np.ptp(x) + 1e-8)
        x = cv2.resize(x, cell[::-1], interpolation=cv2.INTER_NEAREST)  # (H', W')
        tiles.append((plt.cm.viridis(x)[..., :3] * 255).astype(np.uint8))
        tiles.append(np.full((cell[0], 2, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def png_bytes(image: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> PNG file bytes."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return buf.tobytes()


def image_slider(images: Sequence[np.ndarray], captions: Sequence[str], description: str = "",
                 width: int | None = None):
    """A slider that flips between precomputed images, working in the static HTML book.

    The slider's value is ``jslink``-ed to the ``selected_index`` of two ``Stack`` widgets (the
    images and their captions), so the switch happens in the browser without a kernel.

    Args:
        images: RGB uint8 images, one per view.
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
    texts = widgets.Stack([widgets.HTML(f"<b>{c}</b>") for c in captions], selected_index=0)
    slider = widgets.IntSlider(0, 0, len(images) - 1, description=description,
                               readout=False, continuous_update=True)
    widgets.jslink((slider, "value"), (pictures, "selected_index"))
    widgets.jslink((slider, "value"), (texts, "selected_index"))
    return widgets.VBox([widgets.HBox([slider, texts]), pictures])


def show_source(obj):
    """Display the library's own source of a class or function, syntax-highlighted (the same in
    Jupyter, Colab and the built book)."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def plot_history(histories: dict[str, list[dict]], ax=None):
    """Training loss against step, one line per run (``TrainResult.history``)."""
    ax = ax or plt.subplots(figsize=(6, 3.2))[1]
    for name, history in histories.items():
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label=name)
    ax.set(xlabel="step", ylabel="training loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_class_frequencies(frequencies: np.ndarray, classes: Sequence[str],
                           palette: np.ndarray, ax=None):
    """Bar chart of the share of labelled pixels per class, in the class colours."""
    ax = ax or plt.subplots(figsize=(7, 3))[1]
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
                    palette: np.ndarray, size: float = 2.2):
    """A figure with one row per image: the image, its labels, then each model's prediction.

    Args:
        images: RGB uint8 (H, W, 3) images.
        targets: label maps (H, W).
        predictions: model name -> list of label maps (H, W), one per image.
    """
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(len(images), cols, figsize=(size * 1.35 * cols, size * len(images)),
                             squeeze=False)
    for r, (image, target) in enumerate(zip(images, targets)):
        panels = [("image", image), ("labels", colorize(target, palette))]
        panels += [(name, colorize(p[r], palette)) for name, p in predictions.items()]
        for c, (title, picture) in enumerate(panels):
            axes[r, c].imshow(picture)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_fusion_levels(results: dict, metric: str = "miou", ax=None):
    """Reference results of the fusion-levels experiment: ``metric`` (mean ± sample std over
    seeds) against the number of fused levels, one line per fusion type; the ``c5`` variant
    (no fusion) starts every line."""
    ax = ax or plt.subplots(figsize=(5, 3.2))[1]
    summary = results["summary"]
    labels = ["c5", "c4-c5", "c3-c5", "c2-c5"]
    for kind, marker in (("FPN", "o"), ("UNet", "s")):
        names = ["c5"] + [f"{kind} {lab}" for lab in labels[1:]]
        present = [(i, summary[n]) for i, n in enumerate(names) if n in summary]
        ax.errorbar([i for i, _ in present], [s[metric]["mean"] for _, s in present],
                    yerr=[s[metric]["std"] for _, s in present], marker=marker, capsize=3,
                    label=f"{kind} ({'add' if kind == 'FPN' else 'concat'})")
    ax.set_xticks(range(4), labels)
    ax.set(xlabel="fused levels", ylabel=metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_ablation(results: dict, variants: Sequence[str], metric: str = "miou", ax=None):
    """Reference results of an ablation: ``metric`` (mean ± sample std over seeds, and each
    seed as a dot) for ``variants`` in the given order; variants not in the results are
    skipped."""
    ax = ax or plt.subplots(figsize=(6, 3.2))[1]
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
    ax.set(ylabel=metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def figure_image(fig) -> np.ndarray:
    """Render a Matplotlib figure to an RGB uint8 (H, W, 3) array and close it, e.g. to make
    the precomputed views of ``image_slider`` from ordinary plots."""
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)
    plt.close(fig)
    return image
