"""Schematics of chapter 3: the GFF network, Gated Fully Fusion and the Dense Feature Pyramid."""

from __future__ import annotations

from fusionlab.schematics.diagram import Diagram
from fusionlab.viz import FIGURE_WIDTH

_STRIDES = {"c2": 4, "c3": 8, "c4": 16, "c5": 16}
"""The levels' strides at the cpu profile's output stride 16 (c5 dilated)."""


def schematic_gffnet():
    """The whole network: a dilated encoder, every level reduced to one width, fused by GFF,
    smoothed, then the Dense Feature Pyramid with the pyramid pooling context, and the head.

    Source: Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, Fig. 3 and
    section "Network Architecture"; drawn at the cpu profile's output stride 16 (the paper's
    is 8: strides 4, 8, 8, 8).
    """
    d = Diagram(FIGURE_WIDTH, 3.0)
    rows = {"c5": 2.45, "c4": 1.85, "c3": 1.25, "c2": 0.65}
    for lv, y in rows.items():
        d.box(lv, 0.75, y, f"{lv} (stride {_STRIDES[lv]})", role="feature")
        d.box(f"red{lv}", 2.1, y, "1×1 conv → C")
        d.arrow(lv, f"red{lv}")
    d.box("gff", 3.2, 1.55, "GFF", min_width=0.55)
    for lv in rows:
        d.arrow(f"red{lv}", "gff")
    d.box("smooth", 4.25, 1.55, "two 3×3\nper level")
    d.arrow("gff", "smooth")
    d.box("ppm", 4.25, 2.7, "PPM on c5", role="layer")
    d.box("dfp", 5.3, 1.55, "DFP", min_width=0.55)
    d.arrow("smooth", "dfp")
    d.arrow("ppm", "dfp", bend="hv")
    d.box("head", 6.3, 1.55, "1×1 head\n→ logits", role="output")
    d.arrow("dfp", "head")
    d.box("aux", 6.3, 0.68, "aux head on c4\n(weight 0.4)", role="loss")
    d.text(3.3, 0.15, "C: one width for every level; every arrow into GFF and DFP is "
           "resized bilinearly")
    return d.fig


def schematic_gff():
    """Gated Fully Fusion seen from one receiver, X_2: every other level sends its gated
    feature G_i X_i, resized to X_2; X_2 keeps (1 + G_2) X_2 of itself and lets in
    (1 - G_2) of what arrives.

    Source: Li et al., AAAI 2020, section "Gated Fully Fusion" and Fig. 2:
    X~_l = (1 + G_l) X_l + (1 - G_l) Σ_{i≠l} G_i X_i, G_l = σ(Conv1x1(X_l)).
    """
    d = Diagram(FIGURE_WIDTH, 3.0)
    d.box("x2", 0.7, 2.55, "$X_2$", role="feature", min_width=0.5)
    d.box("own", 3.1, 2.55, r"$(1 + G_2)\,X_2$")
    d.arrow("x2", "own", label=r"own gate $G_2$")
    for lv, y in (("3", 1.85), ("4", 1.25), ("5", 0.65)):
        d.box(f"x{lv}", 0.7, y, f"$X_{lv}$", role="feature", min_width=0.5)
        d.box(f"send{lv}", 2.2, y, rf"$G_{lv}\,X_{lv}$")
        d.arrow(f"x{lv}", f"send{lv}", label="gate")
    d.op("sum", 3.6, 1.25, "+")
    for lv in "345":
        d.arrow(f"send{lv}", "sum", label="Up" if lv == "3" else None)
    d.box("recv", 4.75, 1.25, r"$(1 - G_2)\,\Sigma$")
    d.arrow("sum", "recv")
    d.op("out", 5.7, 1.9, "+")
    d.arrow("own", "out", bend="hv")
    d.arrow("recv", "out", bend="hv")
    d.box("fused", 6.45, 1.9, r"$\tilde{X}_2$", role="output", min_width=0.5)
    d.arrow("out", "fused")
    d.text(3.5, 0.18, r"$G_i = \sigma(\mathrm{Conv}_{1\times1}(X_i))$ in (0, 1): a level "
           "sends where its gate is open and receives where it is closed")
    return d.fig


def schematic_dfp():
    """The Dense Feature Pyramid seen from the lowest level: its fused feature, every higher
    level's DFP output and the pyramid pooling context, concatenated, then a 3 × 3 convolution.

    Source: Li et al., AAAI 2020, section "Dense Feature Pyramid" and Fig. 3:
    D_l = Conv3x3(concat(X_l, Up(D_{l+1}), ..., Up(D_L), Up(context))).
    """
    d = Diagram(FIGURE_WIDTH, 2.9)
    d.box("x2", 0.8, 2.45, r"fused $\tilde{X}_2$", role="feature")
    for key, label, y in (("d3", "$D_3$", 1.85), ("d4", "$D_4$", 1.3), ("d5", "$D_5$", 0.75),
                          ("ctx", "PPM context", 0.2)):
        d.box(key, 0.8, y, label, role="feature", min_width=0.5)
    d.op("cat", 2.6, 1.3, "C")
    for key in ("x2", "d3", "d4", "d5", "ctx"):
        d.arrow(key, "cat")
    d.box("conv", 3.9, 1.3, "3×3 conv → C")
    d.arrow("cat", "conv")
    d.box("d2", 5.1, 1.3, "$D_2$", role="output", min_width=0.5)
    d.arrow("conv", "d2")
    d.text(5.25, 2.45, "the higher levels and the context are resized\n(Up) to level 2. "
           "From the top down, every level\ndoes the same with the levels above it;\n"
           "$D_5$ reads only its own level and the context.\nThe head sees every $D_l$ "
           "and the context.")
    return d.fig
