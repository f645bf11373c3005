"""The book's figure style: the column width, dots per inch and font size every figure is made
for, the metrics' names on an axis, Matplotlib set up accordingly, a figure rendered to an image,
and the library's own source shown in a chapter."""

from __future__ import annotations

import inspect

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np


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


def show_source(obj):
    """Display the library's own source of a class or function, syntax-highlighted (the same in
    Jupyter, Colab and the built book)."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
