"""Schematics of chapter 2: GCN's blocks and ExFuse's SEB, ECRE and DAP."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

from fusionlab.schematics.diagram import Diagram
from fusionlab.viz import FIGURE_WIDTH, FONT_SIZE


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
           "neighbour (l, m) votes for (i, j) with its group (l, m)")
    return d.fig
