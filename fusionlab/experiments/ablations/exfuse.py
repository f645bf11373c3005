"""ExFuse (Zhang et al., ECCV 2018) on our scale: its Tables 3-4 (chapter 2), with the paper's
numbers (PASCAL VOC 2012 val, mIoU %). Its Table 1 opens chapter 1 (``fusion_levels``)."""

from __future__ import annotations

from fractions import Fraction

from fusionlab.experiments.profiles import build_encoder
from fusionlab.experiments.spec import (BuildContext, Chapter, Experiment, ModelSpec, PaperNumber,
                                        Variant, as_tuple)
from fusionlab.models.base import SegmentationModel
from fusionlab.models.exfuse import ExFuse
from fusionlab.models.gcn import GCN


def _gcn(ctx: BuildContext, blocks=None) -> SegmentationModel:
    return GCN(ctx.num_classes, build_encoder(ctx.profile, blocks and as_tuple(blocks)))


def _exfuse(ctx: BuildContext, blocks=None, **modules) -> SegmentationModel:
    return ExFuse(ctx.num_classes, build_encoder(ctx.profile, blocks and as_tuple(blocks)),
                  **modules)


_BLOCKS_HELP = "residual blocks per stage c2..c5, e.g. blocks=1,2,4,1 (default: the profile's)"

MODELS = {
    "gcn": ModelSpec(_gcn, {"blocks": _BLOCKS_HELP}, "GCN + boundary refinement (ExFuse's base)"),
    "exfuse": ModelSpec(_exfuse, {
        "blocks": _BLOCKS_HELP,
        "lr": "layer rearrangement (balance the stages' blocks)",
        "ss": "semantic supervision: ss (heads) or ss=features (heads' features fed to the "
              "decoder)",
        "seb": "semantic embedding branch",
        "ecre": "ecre, ecre=subpixel or ecre=deconv+supervision (Table 4)",
        "dap": "densely adjacent prediction, or dap=conv3x3 (the capacity control)",
    }, "ExFuse on the GCN decoder, each module switchable"),
}
"""GCN and ExFuse on the profile's encoder (``blocks`` changes its layout)."""

BASE_BLOCKS = (1, 1, 5, 1)
"""The encoder layout of the ExFuse ablation: most blocks in c4, like ResNeXt's (3, 4, 23, 3),
so that layer rearrangement has something to balance: (1, 1, 5, 1) -> (2, 2, 2, 2), within 2% of
the FLOPs (c2, c3 and c5 each gain a block, as in the paper)."""

_SS = {"blocks": BASE_BLOCKS, "ss": "features"}
_SS_LR = {**_SS, "lr": True}
_TABLE3 = "ExFuse, Table 3, VOC 2012 val, ResNeXt-101"
_TABLE4 = "ExFuse, Table 4, VOC 2012 val (on model #3 of Table 3, LR + SS)"

EXFUSE = Experiment(
    name="exfuse",
    title="ExFuse's ablation (Table 3, in the paper's order) and ECRE designs (Table 4)",
    variants={
        "GCN": Variant("exfuse", {"blocks": BASE_BLOCKS}),
        "+SS": Variant("exfuse", _SS),
        "+LR": Variant("exfuse", _SS_LR),
        "+ECRE": Variant("exfuse", {**_SS_LR, "ecre": "ecre"}),
        "+SEB": Variant("exfuse", {**_SS_LR, "seb": True}),
        "+SEB+DAP": Variant("exfuse", {**_SS_LR, "seb": True, "dap": "dap"}),
        "+SEB+3x3 (control)": Variant("exfuse", {**_SS_LR, "seb": True, "dap": "conv3x3"}),
        "ExFuse (all)": Variant("exfuse", {**_SS_LR, "seb": True, "dap": "dap", "ecre": "ecre"}),
        "LR+SS, deconv+supervision": Variant("exfuse", {**_SS_LR, "ecre": "deconv+supervision"}),
        "LR+SS, sub-pixel only": Variant("exfuse", {**_SS_LR, "ecre": "subpixel"}),
        "GCN, encoder's layout": Variant("exfuse", {}),
        "ExFuse without LR, encoder's layout": Variant(
            "exfuse", {"ss": "features", "seb": True, "dap": "dap", "ecre": "ecre"}),
    },
    paper={
        "+SS": PaperNumber(1.5, _TABLE3, base="GCN",
                           note="SS during ImageNet pretraining, its features fed to the decoder"),
        "+LR": PaperNumber(0.8, _TABLE3, base="+SS"),
        "+ECRE": PaperNumber(0.5, _TABLE3, base="+LR"),
        "+SEB": PaperNumber(0.7, _TABLE3, base="+LR"),
        "+SEB+DAP": PaperNumber(0.6, _TABLE3, base="+SEB"),
        "ExFuse (all)": PaperNumber(0.4, _TABLE3, base="+SEB+DAP"),
        "LR+SS, deconv+supervision": PaperNumber(-0.1, _TABLE4, base="+LR"),
        "LR+SS, sub-pixel only": PaperNumber(-0.7, _TABLE4, base="+LR"),
    },
    headline=("GCN", "ExFuse (all)"),
    pretrained=(("GCN, encoder's layout", "ExFuse without LR, encoder's layout"),),
)
"""Semantic supervision feeds its heads' features to the decoder (``ss="features"``), the
segmentation-time analogue of the setting behind the paper's +1.5. The ladder GCN -> +SS ->
+LR, then ECRE and SEB each on LR + SS, DAP on SEB, everything; a control that replaces DAP by
a plain 3 x 3 convolution (DAP after its 1 x 1 widening is one linear 3 x 3 convolution, so the
control separates the idea from the added capacity); and Table 4's two other ECRE designs.
Table 4's ECRE row (+0.5 over LR + SS) is ``+ECRE``.

On the ImageNet encoder the layout is the pretrained one: layer rearrangement, which the paper
pretrains on ImageNet after moving the blocks, cannot be applied to weights that exist, so the
pretrained comparison is GCN against ExFuse without LR, both on the encoder as it comes."""

CHAPTER = Chapter(2, "02-exfuse", "The semantic gap: ExFuse", ("1804.03821",), (EXFUSE,),
                  "fusionlab.models.exfuse", live={"ExFuse": EXFUSE.variants["ExFuse (all)"]},
                  live_share=Fraction(1, 2))
