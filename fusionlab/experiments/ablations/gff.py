"""Gated Fully Fusion (Li et al., AAAI 2020) on our scale: Table 1's fusions at equal width, the
Dense Feature Pyramid, the gate width and the fusion order (chapter 3).

The paper's ablation numbers (its Table 1 and the later tables) are not reproduced here: they
could not be read from a source we can cite. The one number given is the full network's
Cityscapes test mIoU, a level on another dataset and scale, not a gain to compare with ours.
"""

from __future__ import annotations

from fractions import Fraction

from fusionlab.experiments.profiles import build_encoder
from fusionlab.experiments.spec import (BuildContext, Chapter, Experiment, ModelSpec, PaperNumber,
                                        Variant)
from fusionlab.models.base import HeadFactory, conv1x1_head
from fusionlab.models.gff import GFFNet

OUTPUT_STRIDES = {"smoke": 16, "cpu": 16, "gpu": 8}
"""The encoder's output stride per profile. The paper dilates c4 and c5 (output stride 8,
levels at strides 4, 8, 8, 8). At the cpu profile (120 x 160, widths (32, 64, 128, 256),
channels 64) GFF + DFP costs 2.99 GFLOPs at output stride 8, 1.52 at 16 and 1.21 at 32
(``fusionlab.bench.count_flops``, against 0.51 for FPN at 32), so the cpu profile dilates c5
only (strides 4, 8, 16, 16): half the cost of the paper's layout while the two top levels
still share one resolution. smoke follows cpu so that CI runs the same layout; gpu keeps 8."""


def build_gffnet(ctx: BuildContext, output_stride: int | None = None, fusion: str | None = "gff",
                 dfp: bool = True, gate_channels: int | str = 1,
                 order: str = "parallel", head: HeadFactory = conv1x1_head) -> GFFNet:
    """``GFFNet`` on the profile's encoder and decoder width.

    Args:
        ctx: classes and profile.
        output_stride: 8, 16 or 32; default ``OUTPUT_STRIDES[profile name]``.
        fusion: ``"gff"``, ``"sum"``, ``"concat"``, ``"fpn"``, or ``None``/``"none"`` (the
            PSPNet baseline).
        dfp: the Dense Feature Pyramid.
        gate_channels: 1, or ``"C"`` for one gate per channel (the profile's width).
        order: ``"parallel"`` (the paper) or ``"sequential"`` (the released code).
        head: the prediction head's factory (not a command-line option; chapter 6 gives it
            the DUpsampling head).

    Raises:
        ValueError: a profile without a default output stride and none given; a
            ``gate_channels`` string other than ``"C"``; see ``GFFNet`` and ``build_encoder``.
    """
    if output_stride is None:
        if ctx.profile.name not in OUTPUT_STRIDES:
            raise ValueError(f"profile {ctx.profile.name!r} has no default output stride "
                             f"(known: {OUTPUT_STRIDES}); give output_stride=8, 16 or 32")
        output_stride = OUTPUT_STRIDES[ctx.profile.name]
    if isinstance(gate_channels, str):
        if gate_channels != "C":
            raise ValueError(f"gate_channels must be an int or 'C', got {gate_channels!r}")
        gate_channels = ctx.profile.channels
    encoder = build_encoder(ctx.profile, output_stride=output_stride)
    return GFFNet(ctx.num_classes, encoder, fusion=None if fusion == "none" else fusion,
                  dfp=dfp, gate_channels=gate_channels, order=order,
                  channels=ctx.profile.channels, head=head)


MODEL_OPTIONS = {
    "output_stride": "8 (the paper), 16 or 32; default per profile (smoke/cpu 16, gpu 8)",
    "fusion": "gff (default), sum, concat, fpn, or none (the PSPNet baseline, with dfp=false)",
    "dfp": "dense feature pyramid (default true; dfp=false for the plain concatenation)",
    "gate_channels": "channels of each gate map: 1 (default, the paper's Fig. 2) or C",
    "order": "parallel (the paper's formula) or sequential (the released code, in place)",
}
"""The options of ``build_gffnet`` with their one-line help, for the builder table."""

_TABLE1 = {"fusion": "gff", "dfp": False}

GFF = Experiment(
    name="gff",
    title="GFF on our scale: Table 1's fusions at equal width, + DFP, gate width, fusion order",
    variants={
        "PSPNet": Variant("gff", {"fusion": None, "dfp": False}),
        "Sum": Variant("gff", {"fusion": "sum", "dfp": False}),
        "Concat": Variant("gff", {"fusion": "concat", "dfp": False}),
        "FPN": Variant("gff", {"fusion": "fpn", "dfp": False}),
        "GFF": Variant("gff", _TABLE1),
        "GFF+DFP": Variant("gff", {"fusion": "gff", "dfp": True}),
        "GFF, gates of width C": Variant("gff", {**_TABLE1, "gate_channels": "C"}),
        "GFF, sequential order": Variant("gff", {**_TABLE1, "order": "sequential"}),
    },
    paper={
        "GFF+DFP": PaperNumber(
            82.3, "GFF (arXiv:1904.01803), Introduction, contributions: Cityscapes test, "
                  "fine annotations only",
            note="the full network (GFF + DFP) on an ImageNet-pretrained ResNet at output "
                 "stride 8 and Cityscapes resolution: a level, not comparable with CamVid"),
    },
    headline=("PSPNet", "GFF+DFP"),
    pretrained=(("PSPNet", "GFF+DFP"), ("Sum", "GFF")),
)
"""Table 1's comparison on the PSPNet baseline (Sum, Concat, FPN and GFF, each fusing c2..c5
reduced to the profile's width, with two 3x3 convolutions per fused level and the plain
concatenation with the context), then the Dense Feature Pyramid on GFF; and two ablations on
GFF without the DFP: one gate per channel (nhatuan84's copy; the authors' code has 128-channel
gates on the raw backbone features) against one gate map per level (the paper's Fig. 2), and
the released code's sequential, in-place order against the paper's parallel formula. The
headline compares the PSPNet baseline with the full network."""

MODELS = {"gff": ModelSpec(build_gffnet, MODEL_OPTIONS, "PSPNet with Gated Fully Fusion and the "
                                                      "Dense Feature Pyramid (fusion=none "
                                                      "dfp=false: PSPNet)")}
"""GFFNet and its baseline for the builder table."""

CHAPTER = Chapter(3, "03-gff", "Gating: Gated Fully Fusion", ("1904.01803",), (GFF,),
                  "fusionlab.models.gff", live={"GFF": GFF.variants["GFF"]},
                  live_share=Fraction(1, 2))
