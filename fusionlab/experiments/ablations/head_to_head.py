"""Chapter 6's experiment: the four papers head to head on one ImageNet encoder, and one model
that composes their ideas.

FPN (the common baseline), ExFuse, GFF + DFP, DFN and DUpsampling are each the headline model of
its chapter, in its paper's own configuration (output stride, auxiliary heads): the variants
are those chapters' variants, and their runs are borrowed from those chapters' results when
the same configuration, seed and autocast precision is stored there (``Experiment.borrowed``);
chapter 1's FPN c2-c5 seeds 0-2 trained in bfloat16, so chapter 6 trains its own float32 FPN
for those seeds. The composed model adds DFN's Border Network and then a DUpsampling head to
GFF + DFP.
"""

from __future__ import annotations

from fractions import Fraction

from fusionlab.experiments.ablations.dfn import EXPERIMENT as DFN_EXPERIMENT
from fusionlab.experiments.ablations.dupsampling import DUPSAMPLING
from fusionlab.experiments.ablations.exfuse import EXFUSE
from fusionlab.experiments.ablations.fusion_levels import FUSION_LEVELS
from fusionlab.experiments.ablations.gff import GFF, build_gffnet
from fusionlab.experiments.spec import (BuildContext, Chapter, Experiment, ModelSpec, Variant)
from fusionlab.models.base import SegmentationModel, conv1x1_head
from fusionlab.models.composed import BorderSupervised
from fusionlab.models.dupsampling import dupsampling_head
from fusionlab.models.label_space import fit_label_projection

HEADS = ("conv", "dupsampling")
"""The composed model's heads: a 1x1 convolution with bilinear upsampling, or DUpsampling."""


def build_composed(ctx: BuildContext, border: bool = True, head: str = "dupsampling"
                   ) -> SegmentationModel:
    """GFF + DFP (``build_gffnet``'s full network) with DFN's Border Network
    (``BorderSupervised``) and a DUpsampling head, each of the two switchable.

    The DUpsampling head reads GFF's concatenation at the stride of c2 (4): its projection is
    fitted to the training labels at r = 4 with C~ = the profile's decoder width, W frozen, no
    adaptive temperature.

    Args:
        ctx: classes, profile and training set.
        border: add the Border Network and its focal loss (lambda 0.1).
        head: ``"dupsampling"`` or ``"conv"`` (GFFNet's own 1x1 head).

    Raises:
        ValueError: an unknown ``head``; the DUpsampling head without a training set; see
            ``build_gffnet``.
        TypeError: a ``border`` that is not a bool.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if not isinstance(border, bool):
        raise TypeError(f"border must be a bool, got {border!r}")
    factory = conv1x1_head
    if head == "dupsampling":
        if ctx.train_set is None:
            raise ValueError("the DUpsampling head is fitted to the training labels, but the "
                             "build context has no train_set")
        projection = fit_label_projection(ctx.train_set, 4, ctx.profile.channels,
                                          num_classes=ctx.num_classes)
        factory = dupsampling_head(projection)
    model = build_gffnet(ctx, fusion="gff", dfp=True, head=factory)
    return BorderSupervised(model) if border else model


MODELS = {"composed": ModelSpec(
    build_composed,
    {"border": "DFN's Border Network and its focal loss (default true)",
     "head": "dupsampling (default; r = 4, C~ = the decoder width) or conv (GFFNet's 1x1 head)"},
    "GFF + DFP with DFN's Border Network and a DUpsampling head, each switchable")}
"""The composed model for the builder table."""

_PAPERS = {
    "FPN": (FUSION_LEVELS, "FPN c2-c5"),
    "ExFuse": (EXFUSE, "ExFuse without LR, encoder's layout"),
    "GFF+DFP": (GFF, "GFF+DFP"),
    "DFN": (DFN_EXPERIMENT, "DFN"),
    "DUpsampling": (DUPSAMPLING, "+c2"),
}

HEAD_TO_HEAD = Experiment(
    name="head-to-head",
    title="The four papers head to head on one encoder, and GFF + DFN's borders + DUpsampling",
    variants={
        **{label: source.variants[variant] for label, (source, variant) in _PAPERS.items()},
        "GFF+DFP + borders": Variant("composed", {"border": True, "head": "conv"}),
        "GFF+DFP + borders + DUpsampling": Variant("composed", {"border": True,
                                                                "head": "dupsampling"}),
    },
    pretrained=(*(("FPN", label) for label in list(_PAPERS)[1:]),
                ("GFF+DFP", "GFF+DFP + borders"),
                ("GFF+DFP", "GFF+DFP + borders + DUpsampling")),
    borrowed={label: (source.name, variant) for label, (source, variant) in _PAPERS.items()},
)
"""Each paper's headline model against FPN c2-c5, then the composition ladder on GFF + DFP.
ExFuse is the full ExFuse without layer rearrangement, which changes the encoder that the
ImageNet weights fix; DUpsampling is the paper's fused model at output stride 16 (c2, the
paper's b1u2c3, downsampled to c5 and concatenated before DUpsampling: Table 2's 74.03), not
Table 1's unfused one, which would meet FPN's four levels with one."""

CHAPTER = Chapter(6, "06-head-to-head", "The four papers head to head",
                  ("1804.03821", "1904.01803", "1804.09337", "1903.02120"), (HEAD_TO_HEAD,),
                  "fusionlab.models.composed",
                  live={label: HEAD_TO_HEAD.variants[label] for label in _PAPERS},
                  live_share=Fraction(1, 10), imagenet=True)
