"""Looking inside the papers' modules: a loss and its gradient against the logit (DFN's focal
loss), channel attention weights (DFN's CAB), shares of a fused feature (GFF), the label space's
principal components, mIoU* and the adaptive temperature (DUpsampling), and the votes of
Densely Adjacent Prediction (ExFuse)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D

from fusionlab.viz.maps import colorize, overlay
from fusionlab.viz.style import FIGURE_WIDTH, FONT_SIZE


def plot_loss_responses(logits: np.ndarray | torch.Tensor,
                        responses: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]):
    """Binary losses and their gradients against the logit: one column per loss, the loss on
    top and d loss / d logit below, one line per target (0: no border, 1: border).

    Args:
        logits: (P,) the logits the curves were measured at.
        responses: loss name -> target -> ``(values, gradients)``, (P,) each
            (``losses.loss_response``).

    Returns:
        The figure.

    Raises:
        ValueError: no responses.
    """
    if not responses:
        raise ValueError("no loss to show: responses is empty")
    fig, axes = plt.subplots(2, len(responses), figsize=(FIGURE_WIDTH, 4.6), sharex=True,
                             squeeze=False, layout="constrained")
    for col, (name, curves) in enumerate(responses.items()):
        for t, (value, grad) in sorted(curves.items()):
            label, colour = ("t = 1 (border)", "C3") if t else ("t = 0 (no border)", "C0")
            axes[0, col].plot(logits, value, color=colour, label=label)
            axes[1, col].plot(logits, grad, color=colour, label=label)
        axes[0, col].set_title(name)
        axes[1, col].set_xlabel("logit")
        for ax in axes[:, col]:
            ax.axhline(0, color="black", lw=0.8)
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("loss")
    axes[1, 0].set_ylabel("d loss / d logit")
    axes[0, 0].legend()
    return fig


def plot_channel_weights(weights: dict[str, np.ndarray | torch.Tensor],
                         label: str = "attention weight w"):
    """Channel weights in [0, 1] (e.g. DFN's channel attention) as strips, one panel per
    named set: a row per image, a column per channel, the channels sorted by their mean weight
    over the images, one colour scale for all.

    Args:
        weights: panel title -> (n, C) weights of n images.
        label: the colour bar's label.

    Returns:
        The figure.

    Raises:
        ValueError: no weights, or a set that is not (n, C).
    """
    if not weights:
        raise ValueError("no weights to show: weights is empty")
    fig, axes = plt.subplots(len(weights), 1, figsize=(FIGURE_WIDTH, 1.55 * len(weights)),
                             sharex=True, squeeze=False, layout="constrained")
    for ax, (title, w) in zip(axes[:, 0], weights.items()):
        w = np.asarray(w, dtype=float)
        if w.ndim != 2:
            raise ValueError(f"weights of shape (n, C) expected for {title!r}, got {w.shape}")
        strips = ax.imshow(w[:, np.argsort(-w.mean(0))], cmap="viridis", vmin=0, vmax=1,
                           aspect="auto", interpolation="nearest")  # by mean weight
        ax.set_title(title)
        ax.set_yticks([0, len(w) - 1], ["1", str(len(w))])
        ax.set_ylabel("image")
    axes[-1, 0].set_xlabel("channel, sorted by its mean weight over these images")
    fig.colorbar(strips, ax=list(axes[:, 0]), shrink=0.8, aspect=30, label=label)
    return fig


def plot_explained_variance(ratios: dict[str, np.ndarray | torch.Tensor],
                            marks: dict[str, float] | None = None, ax=None):
    """The cumulative share of the variance (in %) the leading principal components hold,
    against the number kept on a log axis: one line per fit, e.g. of the label patches of
    DUpsampling (``LabelProjection.explained_variance_ratio``).

    Args:
        ratios: label -> (P,) explained-variance ratios of a fit, largest first.
        marks: label -> a number of components marked by a dotted vertical line.
    """
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3.0))[1]
    for label, ratio in ratios.items():
        share = 100 * np.cumsum(np.asarray(ratio, dtype=float))            # (P,)
        ax.plot(np.arange(1, len(share) + 1), share, label=label)
    for label, x in (marks or {}).items():
        ax.axvline(x, color="grey", ls=":", label=label)
    ax.set(xscale="log", xlabel=r"components kept ($\tilde{C}$)", ylabel="% of the variance")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return ax


def plot_temperature(temperatures: Sequence[float], bound: Sequence[float] | None = None,
                     bound_label: str = "log T falling by the lr", ax=None):
    """DUpsampling's adaptive temperature T at each training step (``AdaptiveTemperature``),
    and a dashed reference curve beside it (e.g. log T falling by the learning rate at every
    step, the fastest the optimiser lets it fall).

    Args:
        temperatures: T after each step, step 1 first.
        bound: the reference T at the same steps, or ``None``.
        bound_label: its legend entry.

    Raises:
        ValueError: a ``bound`` of another length than ``temperatures``.
    """
    if bound is not None and len(bound) != len(temperatures):
        raise ValueError(f"one reference T per step expected: {len(temperatures)} steps, got "
                         f"{len(bound)}")
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH / 2, 2.9))[1]
    steps = np.arange(1, len(temperatures) + 1)
    ax.plot(steps, temperatures, label="learned T")
    if bound is not None:
        ax.plot(steps, bound, ls="--", color="grey", label=bound_label)
    ax.set(xlabel="step", ylabel="T", title="DUpsampling's temperature")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_miou_star(star: dict[tuple, float], ax=None):
    """mIoU* against the code length: one colour per ratio r, a solid line for the centred PCA
    projection, a dashed one for the uncentred, a dotted level for pooling + bilinear
    upsampling (DUpsampling, Tian et al., CVPR 2019, Table 1).

    Args:
        star: ``models.label_space.miou_star_sweep``: ``(centred, r, C~)`` and
            ``("bilinear", r)`` -> mIoU* as a fraction; drawn in percent.

    Raises:
        ValueError: no projection in ``star``.
    """
    pca = [key for key in star if key[0] != "bilinear"]
    if not pca:
        raise ValueError("no (centred, r, C~) entry in star: nothing to draw")
    ratios = sorted({r for _, r, _ in pca})
    components = sorted({c for _, _, c in pca})
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 3.2))[1]
    for i, r in enumerate(ratios):
        for centred, style in ((True, "-o"), (False, "--x")):
            if (centred, r, components[0]) in star:
                ax.plot(components, [100 * star[centred, r, c] for c in components], style,
                        color=f"C{i}")
        if ("bilinear", r) in star:
            ax.axhline(100 * star["bilinear", r], color=f"C{i}", ls=":")
    handles = [Line2D([], [], color=f"C{i}", label=f"r = {r}") for i, r in enumerate(ratios)]
    handles += [Line2D([], [], color="k", ls="-", marker="o", label="PCA, centred"),
                Line2D([], [], color="k", ls="--", marker="x", label="PCA, not centred"),
                Line2D([], [], color="k", ls=":", label="pooling + bilinear")]
    ax.legend(handles=handles, ncol=2, loc="upper left")
    ax.set(xscale="log", xlabel=r"components kept ($\tilde{C}$)", ylabel="mIoU* (%)")
    ax.set_xticks(components, [str(c) for c in components])
    ax.grid(alpha=0.3)
    return ax


def plot_dap_votes(image: np.ndarray, labels: torch.Tensor, votes: torch.Tensor,
                   position: tuple[int, int], classes: Sequence[str], palette: np.ndarray):
    """One position of ExFuse's Densely Adjacent Prediction, looked into (ExFuse, Sec. 4.3):
    the prediction over the image with the k x k window of neighbours boxed, the k x k votes
    (each neighbour's class, and its score for the class finally chosen), and their mean, the
    output scores at the position.

    Args:
        image: (H, W, 3) uint8, the input (``denormalise``).
        labels: (h, w) the predicted classes at DAP's resolution (h divides H).
        votes: (k, k, K) the votes for ``position`` (``DenselyAdjacentPrediction.votes``).
        position: (i, j) on the (h, w) grid.
        classes, palette: the K class names and (K, 3) uint8 colours.

    Returns:
        The figure.

    Raises:
        ValueError: votes that are not (k, k, K), or ``position`` outside ``labels``.
    """
    k, (i, j) = votes.shape[0], position
    if votes.shape != (k, k, len(classes)) or not (0 <= i < labels.shape[0]
                                                  and 0 <= j < labels.shape[1]):
        raise ValueError(f"votes (k, k, {len(classes)}) and a position inside "
                         f"{tuple(labels.shape)} expected, got votes {tuple(votes.shape)} and "
                         f"position {position}")
    stride = image.shape[0] // labels.shape[0]
    chosen = int(labels[i, j])
    full = labels.repeat_interleave(stride, 0).repeat_interleave(stride, 1)  # (H, W)
    fig, axes = plt.subplots(1, 3, figsize=(FIGURE_WIDTH, 2.8), layout="constrained")
    axes[0].imshow(overlay(image, full.numpy(), palette))
    axes[0].add_patch(plt.Rectangle(((j - k // 2) * stride - 0.5, (i - k // 2) * stride - 0.5),
                                    k * stride, k * stride, fill=False, color="white", lw=2))
    axes[0].set_title(f"prediction; box: the {k} x {k} window", fontsize=FONT_SIZE - 1)
    axes[1].imshow(colorize(votes.argmax(-1), palette))
    for (l, m), vote in np.ndenumerate(votes[..., chosen].numpy()):
        axes[1].text(m, l, f"{vote:.1f}", ha="center", va="center", color="white",
                     fontsize=FONT_SIZE + 1, fontweight="bold")
    axes[1].set_title(f"{k * k} votes for ({i}, {j}): {classes[chosen]}", fontsize=FONT_SIZE - 1)
    axes[2].bar(classes, votes.mean((0, 1)).numpy(), color=palette / 255, edgecolor="black",
                lw=0.5)
    axes[2].set_title("their mean: output scores", fontsize=FONT_SIZE - 1)
    axes[2].tick_params(axis="x", rotation=90)
    for ax in axes[:2]:
        ax.set_axis_off()
    return fig


def plot_shares(shares: np.ndarray, rows: Sequence[str], parts: Sequence[str],
                colours: Sequence | None = None, xlabel: str = "share", ax=None):
    """Horizontal stacked bars of shares: one bar per row, split into its parts, with the
    legend above the plot; the first row on top.

    Args:
        shares: (R, P) non-negative shares, each row summing to 1.
        rows: the R bar names; parts: the P part names; colours: P Matplotlib colours
            (default: the colour cycle).

    Raises:
        ValueError: shares that are not (len(rows), len(parts)), or a row that does not sum
            to 1.
    """
    shares = np.asarray(shares, dtype=float)
    if shares.shape != (len(rows), len(parts)):
        raise ValueError(f"shares of shape ({len(rows)}, {len(parts)}) expected, got "
                         f"{shares.shape}")
    if not np.allclose(shares.sum(1), 1, atol=1e-6):
        raise ValueError(f"each row of shares must sum to 1, got sums {shares.sum(1)}")
    ax = ax or plt.subplots(figsize=(FIGURE_WIDTH, 0.4 * len(rows) + 1.0),
                            layout="constrained")[1]
    left = np.zeros(len(rows))
    for j, name in enumerate(parts):
        ax.barh(range(len(rows)), shares[:, j], left=left, label=name,
                color=colours[j] if colours is not None else f"C{j}")
        left += shares[:, j]
    ax.set_yticks(range(len(rows)), list(rows))
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel=xlabel)
    ax.legend(ncol=len(parts), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return ax
