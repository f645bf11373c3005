"""``Diagram``: the block-diagram canvas every module schematic of the book is drawn on."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from fusionlab.viz import FIGURE_DPI, FIGURE_WIDTH, FONT_SIZE

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
