"""Schematics of chapter 5: DUpsampling's label compression, its head with the adaptive
temperature, and the flexible aggregation decoder beside the usual one."""

from __future__ import annotations

from fusionlab.schematics.diagram import Diagram
from fusionlab.viz import FIGURE_WIDTH, FONT_SIZE


def schematic_label_compression():
    """Label-space compression as ``LabelProjection`` computes it: an r × r patch of the labels,
    one-hot and flattened in (c, dy, dx) order to v of length K·r², is centred on the mean
    patch v̄ and compressed to a code c = P (v − v̄) of C~ numbers, reconstructed as
    v̂ = W c + v̄, which pixel shuffle lays out again as an r × r × K patch. W holds the C~
    leading principal directions of the centred training patches and P = Wᵀ.

    The centred form is drawn because it is what ``LabelProjection.encode`` and ``decode``
    compute with ``fit_label_projection``'s default ``centred=True``; with ``centred=False`` the
    mean patch is zero and the drawing reads c = P v, v̂ = W P v.

    Source: Tian et al., "Decoders Matter for Semantic Segmentation", CVPR 2019, label-space
    compression.

    Differences from the paper:
        The paper writes the objective without a mean, SUM ||v − W P v||², and does not say
        whether the patches are centred; fusionlab centres them by default, so the code is
        taken of v − v̄ and the reconstruction adds v̄ back (the bias of DUpsampling).
    """
    d = Diagram(FIGURE_WIDTH, 2.5)
    d.text(0.05, 2.3, "compress (once, on the training labels)", weight="bold", ha="left")
    d.box("patch", 0.7, 1.75, "r×r label patch", role="feature")
    d.box("flat", 2.45, 1.75, "one-hot, flatten (c, dy, dx)")
    d.box("v", 4.2, 1.75, "v: K·r² numbers", role="feature")
    d.box("code", 6.15, 1.75, r"code $c = P\,(v - \bar{v})$:" "\n"
          r"$\tilde{C}$ numbers", role="output")
    d.arrow("patch", "flat")
    d.arrow("flat", "v")
    d.arrow("v", "code", label=r"$P = W^\top$")
    d.text(0.05, 1.2, "reconstruct (DUpsampling)", weight="bold", ha="left")
    d.box("w", 6.15, 0.75, "× W, + mean")
    d.box("vhat", 4.2, 0.75, r"$\hat{v} = W c + \bar{v}$: K·r² scores", role="feature")
    d.box("shuffle", 2.45, 0.75, "pixel shuffle r")
    d.box("out", 0.7, 0.75, "r×r×K scores", role="output")
    d.arrow("code", "w")
    d.arrow("w", "vhat")
    d.arrow("vhat", "shuffle")
    d.arrow("shuffle", "out")
    d.text(3.5, 0.2, r"mean $\bar{v}$: the mean training patch; W: the $\tilde{C}$ leading "
           r"principal directions of $v - \bar{v}$ (PCA)" "\n"
           "pixel shuffle inverts the flattening")
    return d.fig


def schematic_dupsampling_head():
    """The DUpsampling head: a 1 × 1 convolution predicts a code of C~ channels at stride r,
    the fixed 1 × 1 convolution with W (plus the mean patch) turns each code into K·r² scores,
    pixel shuffle lays them out at full resolution, and the scores are divided by a learned
    temperature T before the softmax and the cross-entropy against the full-resolution labels.

    Source: Tian et al., "Decoders Matter for Semantic Segmentation", CVPR 2019, DUpsampling
    and the adaptive-temperature softmax.
    """
    d = Diagram(FIGURE_WIDTH, 2.2)
    d.box("x", 0.75, 1.6, "features: C, H/r", role="feature")
    d.box("conv", 2.35, 1.6, r"1×1 conv → $\tilde{C}$")
    d.box("code", 3.85, 1.6, r"code: $\tilde{C}$, H/r", role="feature")
    d.box("w", 5.75, 1.6, "W f + mean (fixed)")
    d.arrow("x", "conv")
    d.arrow("conv", "code")
    d.arrow("code", "w")
    d.box("shuffle", 5.75, 0.75, "pixel shuffle r")
    d.box("scores", 4.05, 0.75, "scores z: K, H", role="feature")
    d.box("temp", 2.5, 0.75, "z / T (T learned)")
    d.box("loss", 0.75, 0.75, "softmax, CE", role="loss")
    d.arrow("w", "shuffle", label="K·r², H/r", label_offset=(0.45, 0.0))
    d.arrow("shuffle", "scores")
    d.arrow("scores", "temp")
    d.arrow("temp", "loss", dashed=True)
    d.text(3.5, 0.2, "the decoder never works above stride r; W and the mean are buffers, "
           "not parameters")
    return d.fig


def schematic_flexible_aggregation():
    """Two ways to fuse a low-level feature (c2, stride 4) with the last one (c5, output stride
    16): the usual decoder upsamples c5 and fuses at stride 4, then upsamples its prediction
    bilinearly; DUpsampling's decoder average-pools c2 to stride 16, fuses there, and lets
    DUpsampling recover the full resolution.

    Source: Tian et al., "Decoders Matter for Semantic Segmentation", CVPR 2019, flexible
    aggregation (the paper downsamples bilinearly; fusionlab uses average pooling).
    """
    d = Diagram(FIGURE_WIDTH, 3.0)
    for x0, title in ((0.0, "upsample, then fuse"), (3.6, "fuse at stride 16, then DUpsampling")):
        d.text(x0 + 0.05, 2.8, title, size=FONT_SIZE, weight="bold", ha="left")
    d.box("a5", 0.55, 2.2, "c5 (H/16)", role="feature")
    d.box("a2", 0.55, 1.45, "c2 (H/4)", role="feature")
    d.box("aup", 1.75, 2.2, "Up ×4")
    d.op("acat", 1.75, 1.45, "C")
    d.box("aconv", 1.75, 0.85, "two 3×3 at H/4")
    d.box("aout", 1.75, 0.25, "1×1 → K, bilinear ×4", role="output")
    d.arrow("a5", "aup")
    d.arrow("aup", "acat")
    d.arrow("a2", "acat", label="1×1")
    d.arrow("acat", "aconv")
    d.arrow("aconv", "aout")
    d.box("b5", 4.15, 2.2, "c5 (H/16)", role="feature")
    d.box("b2", 4.15, 1.45, "c2 (H/4)", role="feature")
    d.box("bpool", 5.55, 1.45, "avg pool ÷4, 1×1")
    d.op("bcat", 6.65, 1.45, "C")
    d.box("bconv", 5.5, 0.85, "two 3×3 at H/16")
    d.box("bout", 5.5, 0.25, r"1×1 → $\tilde{C}$, DUpsampling ×16", role="output")
    d.arrow("b2", "bpool")
    d.arrow("bpool", "bcat")
    d.arrow("b5", "bcat", bend="hv")
    d.arrow("bcat", "bconv", bend="vh")
    d.arrow("bconv", "bout")
    return d.fig
