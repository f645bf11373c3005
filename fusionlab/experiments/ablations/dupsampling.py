"""DUpsampling (Tian et al., CVPR 2019) on our scale: bilinear against DUpsampling at output
strides 16 and 32 (Table 1), the fused low-level levels (Table 2), W frozen, learned from
scratch or trained from PCA, and the adaptive temperature (chapter 5). The paper's numbers are
PASCAL VOC 2012 val, ResNet-50, mIoU %.
"""

from __future__ import annotations

from fractions import Fraction

from fusionlab.experiments.profiles import build_encoder
from fusionlab.experiments.spec import (BuildContext, Chapter, Experiment, ModelSpec, PaperNumber,
                                        Variant, as_tuple)
from fusionlab.models.base import conv1x1_head
from fusionlab.models.dupsampling import DUpsamplingNet
from fusionlab.models.label_space import fit_label_projection

_W_MODES = {"frozen": (False, "pca"), "learned": (True, "pca"), "scratch": (True, "random")}


def _levels(fuse) -> tuple[str, ...]:
    if fuse in ("none", "", None):
        return ()
    return as_tuple(fuse)


def build_dupsampling(ctx: BuildContext, head: str = "dupsampling", output_stride: int = 16,
                      fuse=("c2",), w: str | None = None, temperature: bool | float | None = None,
                      components: int | None = None) -> DUpsamplingNet:
    """``DUpsamplingNet`` on the profile's encoder and decoder width, its
    projection fitted to the training labels (``BuildContext.train_set``, cached).

    Args:
        ctx: classes, profile and training set.
        head: ``"dupsampling"`` or ``"bilinear"`` (the same decoder with a 1x1 head and
            bilinear upsampling).
        output_stride: 16 or 32 (8 works too, but then pooling c4 to c5 does nothing).
        fuse: the low-level levels, e.g. ``("c2", "c3")``, ``"c2"``, or ``()``/``"none"``.
        w: ``"frozen"`` (PCA, the paper; the default), ``"learned"`` (PCA-initialised, trained)
            or ``"scratch"`` (random, trained); DUpsampling only.
        temperature: the adaptive temperature: ``True`` (initial T = 1), ``False``, or an
            initial T; default on for DUpsampling, off for bilinear.
        components: C~; default the decoder width C, so the 1x1 convolution to the code is
            square (a longer code is only reached within a C-dimensional subspace of it);
            DUpsampling only.

    Raises:
        ValueError: an unknown ``head`` or ``w``; ``w`` or ``components`` with the bilinear
            head; a DUpsampling head without a training set; see ``DUpsamplingNet`` and
            ``fit_label_projection``.
    """
    if head not in ("dupsampling", "bilinear"):
        raise ValueError(f"head must be 'dupsampling' or 'bilinear', got {head!r}")
    if temperature is None:
        temperature = head == "dupsampling"
    initial_t = (1.0 if temperature else None) if isinstance(temperature, bool) else temperature
    encoder = build_encoder(ctx.profile, output_stride=output_stride)
    common = {"output_stride": output_stride, "fuse": _levels(fuse), "temperature": initial_t,
              "channels": ctx.profile.channels}
    if head == "bilinear":
        if w is not None or components is not None:
            raise ValueError("w and components belong to the DUpsampling head, not to "
                             "head='bilinear'")
        return DUpsamplingNet(ctx.num_classes, encoder, None, head=conv1x1_head, **common)
    if (w or "frozen") not in _W_MODES:
        raise ValueError(f"w must be one of {sorted(_W_MODES)}, got {w!r}")
    if ctx.train_set is None:
        raise ValueError("the DUpsampling head is fitted to the training labels, but the build "
                         "context has no train_set")
    learn_w, w_init = _W_MODES[w or "frozen"]
    projection = fit_label_projection(ctx.train_set, output_stride,
                                      components or ctx.profile.channels,
                                      num_classes=ctx.num_classes)
    return DUpsamplingNet(ctx.num_classes, encoder, projection, learn_w=learn_w, w_init=w_init,
                          **common)


MODEL_OPTIONS = {
    "head": "dupsampling (default) or bilinear (the same decoder, a 1x1 head, bilinear "
            "upsampling)",
    "output_stride": "16 (default) or 32: the stride of c5, where the decoder runs",
    "fuse": "low-level levels pooled to c5's resolution, e.g. fuse=c2,c3 or fuse=none "
            "(default c2)",
    "w": "frozen (PCA, default), learned (PCA-initialised, trained) or scratch",
    "temperature": "adaptive temperature: true, false or the initial T (default on for "
                   "DUpsampling)",
    "components": "C~, the code length (default: the decoder width)",
}
"""The options of ``build_dupsampling`` with their one-line help, for the builder table."""

_TABLE1 = "DUpsampling, Table 1, VOC 2012 val, ResNet-50, no low-level fusion"
_TABLE2 = "DUpsampling, Table 2, VOC 2012 val, ResNet-50, output stride 16"
_OS16 = {"output_stride": 16}

DUPSAMPLING = Experiment(
    name="dupsampling",
    title="DUpsampling against bilinear (Table 1), fused levels (Table 2), W and temperature",
    variants={
        "bilinear, OS 32": Variant("dupsampling", {"head": "bilinear", "output_stride": 32,
                                                   "fuse": ()}),
        "DUpsampling, OS 32": Variant("dupsampling", {"output_stride": 32, "fuse": ()}),
        "bilinear, OS 16": Variant("dupsampling", {"head": "bilinear", **_OS16, "fuse": ()}),
        "DUpsampling, OS 16": Variant("dupsampling", {**_OS16, "fuse": ()}),
        "+c2": Variant("dupsampling", {**_OS16, "fuse": ("c2",)}),
        "+c3": Variant("dupsampling", {**_OS16, "fuse": ("c3",)}),
        "+c2+c3": Variant("dupsampling", {**_OS16, "fuse": ("c2", "c3")}),
        "+c2, W from scratch": Variant("dupsampling", {**_OS16, "fuse": ("c2",), "w": "scratch"}),
        "+c2, W from PCA, trained": Variant("dupsampling", {**_OS16, "fuse": ("c2",),
                                                            "w": "learned"}),
        "+c2, plain softmax": Variant("dupsampling", {**_OS16, "fuse": ("c2",),
                                                      "temperature": False}),
    },
    paper={
        "DUpsampling, OS 32": PaperNumber(1.32, _TABLE1, base="bilinear, OS 32",
                                          note="72.09 against 70.77"),
        "bilinear, OS 16": PaperNumber(1.38, _TABLE1, base="bilinear, OS 32",
                                       note="72.15 against 70.77"),
        "DUpsampling, OS 16": PaperNumber(1.00, _TABLE1, base="bilinear, OS 16",
                                          note="73.15 against 72.15"),
        "+c2": PaperNumber(0.88, _TABLE2, base="DUpsampling, OS 16",
                           note="b1u2c3 (stride 4, our c2): 74.03 against 73.15, decoder "
                                "1.15 against 0.80 GFLOPs"),
    },
    headline=("bilinear, OS 16", "DUpsampling, OS 16"),
    pretrained=(("bilinear, OS 16", "DUpsampling, OS 16"), ("DUpsampling, OS 16", "+c2")),
)
"""Table 1's four models fuse nothing (its DUpsampling OS 16 row is Table 2's "none", 73.15);
the fused levels, W and temperature variants sit on DUpsampling at output stride 16, and those
of W and T on "+c2", the paper's best single level. The paper fuses conv1_3, b1u2c3 (c2) and
b3u6c3 (c4); it has no c3 row, no learned-W row (its W is fitted and frozen) and shows the
temperature only as training-loss curves (Fig. 5), so those variants have no paper number. On
the ImageNet encoder the comparisons are Table 1's headline and Table 2's fusion of c2, whose
"+c2" is the paper's own model (chapter 6's DUpsampling)."""

PAPER_MIOU_STAR = {"bilinear, OS 32": 94.80, "DUpsampling, OS 32": 99.90,
                   "bilinear, OS 16": 98.40, "DUpsampling, OS 16": 99.95}
"""Table 1's mIoU* (%), the labels' own reconstruction on VOC 2012 val (``miou_star``)."""

PAPER_TABLE2 = {"none": (73.15, 0.80), "conv1_3": (72.70, 1.13), "b1u2c3": (74.03, 1.15),
                "b3u6c3": (73.43, 1.23), "b1u2c3+b3u6c3": (73.82, 1.58),
                "conv1_3+b3u6c3": (74.20, 1.56)}
"""Table 2: fused levels -> (mIoU %, decoder GFLOPs), VOC 2012 val, output stride 16. Table 3:
the vanilla decoder (upsample, then fuse) reaches 73.26 at 5.53 GFLOPs against 74.03 at 1.15
(the "20% of the computation" claim)."""

VANILLA = "upsample, then fuse (UNet c2 + c5)"
"""Chapter 5's name for the vanilla decoder of Table 3 (our UNet on c2 and c5), costed beside
the variants but not trained."""

PAPER_ROWS = {"bilinear, OS 32": (70.77, None), "DUpsampling, OS 32": (72.09, None),
              "bilinear, OS 16": (72.15, None), "DUpsampling, OS 16": PAPER_TABLE2["none"],
              "+c2": PAPER_TABLE2["b1u2c3"], VANILLA: (73.26, 5.53)}
"""The paper's (mIoU %, decoder GFLOPs or None) for the variants it reports, VOC 2012 val,
ResNet-50 (Tables 1, 2 and 3)."""

MODELS = {"dupsampling": ModelSpec(build_dupsampling, MODEL_OPTIONS,
                                  "DUpsampling decoder, or its bilinear twin (head=bilinear)")}
"""The DUpsampling network and its bilinear twin for the builder table."""

CHAPTER = Chapter(5, "05-dupsampling", "Label-space compression: DUpsampling", ("1903.02120",),
                  (DUPSAMPLING,), "fusionlab.models.dupsampling",
                  live={"bilinear twin": DUPSAMPLING.variants["bilinear, OS 16"],
                        "DUpsampling": DUPSAMPLING.variants["DUpsampling, OS 16"]},
                  live_share=Fraction(3, 10))
