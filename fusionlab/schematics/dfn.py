"""Schematics of chapter 4: DFN's refinement residual block, channel attention block, Smooth
Network and Border Network."""

from __future__ import annotations

from fusionlab.schematics.diagram import Diagram
from fusionlab.viz import FIGURE_WIDTH

_STAGES = {"c5": 2.55, "c4": 1.95, "c3": 1.35, "c2": 0.75}
"""Height in inches of each stage's row in the two sub-network schematics (deepest on top)."""


def _encoder(d: Diagram, x: float) -> None:
    """The encoder's stages c2..c5 as a column of feature boxes at ``x`` inches, c2 at the
    bottom, with the arrows of the encoder's forward pass between them."""
    d.text(x, 3.0, "encoder", weight="bold")
    for lv, y in _STAGES.items():
        d.box(lv, x, y, f"{lv} (stride {2 ** int(lv[1])})", role="feature")
    for low, high in (("c2", "c3"), ("c3", "c4"), ("c4", "c5")):
        d.arrow(low, high)


def schematic_rrb():
    """The refinement residual block: a 1 × 1 convolution unifies the channels (x'), then a
    residual unit refines them, out = ReLU(x' + Conv3x3(ReLU(BN(Conv3x3(x'))))).

    Source: Yu et al., "Learning a Discriminative Feature Network for Semantic Segmentation"
    (DFN), CVPR 2018, Sec. 3.1 and Fig. 2(b).
    """
    d = Diagram(FIGURE_WIDTH, 2.2)
    d.text(0.05, 2.0, "Refinement residual block (RRB)", weight="bold", ha="left")
    y, y_res = 1.45, 0.75
    d.box("x", 0.4, y, "$x$: $C_{in}$", role="feature")
    d.box("unify", 1.45, y, "1×1 conv → C")
    d.box("conv1", 2.65, y, "3×3 conv")
    d.box("bn", 3.45, y, "BN")
    d.box("relu1", 4.1, y, "ReLU")
    d.box("conv2", 4.9, y, "3×3 conv")
    d.op("sum", 4.9, y_res, "+")
    d.box("relu2", 5.65, y_res, "ReLU")
    d.box("out", 6.45, y_res, "out: C", role="output")
    d.arrow("x", "unify")
    d.arrow("unify", "conv1")
    d.arrow("conv1", "bn")
    d.arrow("bn", "relu1")
    d.arrow("relu1", "conv2")
    d.arrow("conv2", "sum")
    d.arrow("unify", "sum", bend="vh", label="identity: $x'$")
    d.arrow("sum", "relu2")
    d.arrow("relu2", "out")
    d.text(3.5, 0.18, "no bias and no BN on the 1×1 convolution; C is the unified width "
           "(512 in the paper)")
    return d.fig


def schematic_cab():
    """The channel attention block: the pooled concatenation of the two stages gives one
    weight per channel, w = sigmoid(1x1(ReLU(1x1(GAP(concat(low, Up(high))))))), and
    out = low · w + Up(high).

    Source: Yu et al., "Learning a Discriminative Feature Network for Semantic Segmentation"
    (DFN), CVPR 2018, Sec. 3.1 and Fig. 2(c).
    """
    d = Diagram(FIGURE_WIDTH, 2.6)
    d.text(0.05, 2.42, "Channel attention block (CAB)", weight="bold", ha="left")
    top, mid, bottom = 1.95, 1.25, 0.55
    d.box("low", 0.55, top, "low: stage l", role="feature")
    d.box("high", 0.68, bottom, "high: stage l+1", role="feature")
    d.box("up", 1.65, bottom, "Up")
    d.op("cat", 1.65, mid, "C")
    d.box("gap", 2.28, mid, "GAP")
    d.box("fc1", 3.22, mid, "1×1 conv")
    d.box("relu", 4.18, mid, "ReLU")
    d.box("fc2", 5.15, mid, "1×1 conv")
    d.box("sig", 6.2, mid, "sigmoid")
    d.op("mul", 6.2, top, "×")
    d.op("sum", 6.7, top, "+")
    d.box("out", 6.7, 2.42, "out", role="output")
    d.arrow("high", "up")
    d.arrow("low", "cat")
    d.arrow("up", "cat")
    d.arrow("cat", "gap")
    d.arrow("gap", "fc1")
    d.arrow("fc1", "relu")
    d.arrow("relu", "fc2")
    d.arrow("fc2", "sig")
    d.arrow("sig", "mul", label="w: (N, C)", label_offset=(-0.45, 0.0))
    d.arrow("low", "mul")
    d.arrow("mul", "sum")
    d.arrow("up", "sum", bend="hv", label="Up(high)")
    d.arrow("sum", "out")
    d.text(3.5, 0.12, "w is one weight per channel and image, the same at every position; "
           "no BN inside")
    return d.fig


def schematic_smooth_network():
    """The Smooth Network: top-down from a global average pooling of c5; per stage RRB, CAB
    with the higher stage's output, RRB; the second RRB's output goes to the next stage down,
    and a head on every stage is supervised with cross-entropy (weight 1 each).

    Source: Yu et al., "Learning a Discriminative Feature Network for Semantic Segmentation"
    (DFN), CVPR 2018, Sec. 3.1 and Fig. 2(a), right half.
    """
    d = Diagram(FIGURE_WIDTH, 3.6)
    _encoder(d, 0.65)
    d.box("gp", 1.9, 3.3, "GP: pool + 1×1 conv")
    d.arrow("c5", "gp", bend="vh")
    above = "gp"
    for lv, y in _STAGES.items():
        d.box(f"pre{lv}", 1.9, y, "RRB")
        d.box(f"cab{lv}", 2.75, y, "CAB")
        d.box(f"post{lv}", 3.6, y, "RRB")
        d.box(f"head{lv}", 4.5, y, "1×1 head")
        if lv == "c2":
            d.box(f"out{lv}", 5.95, y, "the prediction (test time)", role="output")
        else:
            d.box(f"out{lv}", 5.95, y, f"stage_{lv}: CE, weight 1", role="loss")
        d.arrow(lv, f"pre{lv}")
        d.arrow(f"pre{lv}", f"cab{lv}")
        d.arrow(above, f"cab{lv}", bend="hv" if above == "gp" else None)
        d.arrow(f"cab{lv}", f"post{lv}")
        d.arrow(f"post{lv}", f"head{lv}")
        d.arrow(f"head{lv}", f"out{lv}", dashed=lv != "c2")
        above = f"post{lv}"
    d.text(3.5, 0.2, "the second RRB feeds the next stage's CAB (upsampled); GP is not "
           "supervised")
    return d.fig


def schematic_border_network():
    """The Border Network: bottom-up and cumulative at the c2 resolution; an RRB on every
    stage, each deeper stage upsampled and added to the running sum, an RRB after each
    addition, and a one-channel border head on every cumulative output (focal loss, weight
    lambda).

    Source: Yu et al., "Learning a Discriminative Feature Network for Semantic Segmentation"
    (DFN), CVPR 2018, Sec. 3.2 and Fig. 2(a), left half; wiring of the official code
    (TorchSeg).
    """
    d = Diagram(FIGURE_WIDTH, 3.6)
    _encoder(d, 0.65)
    below = None
    for lv, y in reversed(list(_STAGES.items())):
        d.box(f"pre{lv}", 1.85, y, "RRB")
        d.arrow(lv, f"pre{lv}")
        if below is None:   # b_2 = RRB(c2)
            d.box(f"head{lv}", 4.45, y, "1×1 head → 1")
            d.arrow(f"pre{lv}", f"head{lv}")
        else:
            d.op(f"sum{lv}", 2.7, y, "+")
            d.box(f"post{lv}", 3.4, y, "RRB")
            d.box(f"head{lv}", 4.45, y, "1×1 head → 1")
            d.arrow(f"pre{lv}", f"sum{lv}")
            d.arrow(below, f"sum{lv}")
            d.arrow(f"sum{lv}", f"post{lv}")
            d.arrow(f"post{lv}", f"head{lv}")
        d.box(f"loss{lv}", 5.95, y, f"border_{lv}: λ × focal", role="loss")
        d.arrow(f"head{lv}", f"loss{lv}", dashed=True)
        below = f"post{lv}" if below is not None else f"pre{lv}"
    d.text(4.3, 3.3, "all sums at stride 4: deeper stages are upsampled")
    d.text(3.5, 0.2, "the border heads are trained against the Canny border target and "
           "unused at test time")
    return d.fig
