"""Chapter 1's experiment: ExFuse's Table 1 (Zhang et al., ECCV 2018) on our scale, which
encoder levels a top-down decoder fuses, with the paper's number (PASCAL VOC 2012 val, mIoU %)."""

from __future__ import annotations

from fractions import Fraction

from fusionlab.encoders import LEVELS
from fusionlab.experiments.profiles import build_encoder
from fusionlab.experiments.spec import (BuildContext, Chapter, Experiment, ModelSpec, PaperNumber,
                                        Variant, as_tuple)
from fusionlab.models import FCN, FPN, UNet
from fusionlab.models.base import SegmentationModel


def _top_down(cls):
    def build(ctx: BuildContext, levels=LEVELS) -> SegmentationModel:
        return cls(ctx.num_classes, build_encoder(ctx.profile), as_tuple(levels),
                   ctx.profile.channels)
    return build


def _fcn(ctx: BuildContext) -> SegmentationModel:
    return FCN(ctx.num_classes, build_encoder(ctx.profile), ctx.profile.channels)


_LEVELS_HELP = "encoder levels fused, e.g. levels=c3,c4,c5 (default all four)"

MODELS = {
    "fcn": ModelSpec(_fcn, {}, "FCN: predict from c5, no fusion"),
    "fpn": ModelSpec(_top_down(FPN), {"levels": _LEVELS_HELP}, "FPN: top-down fusion by addition"),
    "unet": ModelSpec(_top_down(UNet), {"levels": _LEVELS_HELP},
                      "UNet: top-down fusion by concatenation"),
}
"""The baselines of every chapter, on the profile's encoder and decoder width."""

_LEVEL_SETS = {"c4-c5": ("c4", "c5"), "c3-c5": ("c3", "c4", "c5"),
               "c2-c5": ("c2", "c3", "c4", "c5")}

FUSION_LEVELS = Experiment(
    name="fusion-levels",
    title="ExFuse's Table 1 on our scale: which encoder levels the decoder fuses",
    variants={"c5": Variant("fpn", {"levels": ("c5",)}),
              **{f"{model} {label}": Variant(model.lower(), {"levels": levels})
                 for model in ("FPN", "UNet") for label, levels in _LEVEL_SETS.items()}},
    paper={"FPN c2-c5": PaperNumber(
        0.24, "ExFuse, Table 1, VOC 2012 val, ResNet-50", base="FPN c4-c5",
        note="the GCN decoder, not FPN; +0.05 with ResNeXt-101")},
    pretrained=(("c5", "FPN c2-c5"), ("FPN c4-c5", "FPN c2-c5")),
)
"""With one level there is nothing to fuse and FPN and UNet are the same model, so there is one
``c5`` variant and three of each fusion type."""

CHAPTER = Chapter(1, "01-fusion-basics", "Encoders, decoders and the semantic gap", (),
                  (FUSION_LEVELS,), "fusionlab.models.baselines",
                  live={"FCN": Variant("fcn"), "FPN c2-c5": Variant("fpn")},
                  live_share=Fraction(2, 3))
