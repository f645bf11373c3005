"""The one table of model builders, shared by the command line and the experiments.

A model is named by a key of ``MODELS`` and a few options, e.g. ``("exfuse", {"ss": True,
"dap": True})``; an experiment's variants are such pairs (``Variant``), and the command line
spells them ``--model exfuse --modules ss dap``. A builder receives the ``BuildContext``: the
number of classes, the profile and the training set (a head fitted to the training labels, such
as DUpsampling's, needs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from fusionlab.encoders import LEVELS
from fusionlab.experiments.profiles import build_encoder
from fusionlab.experiments.ablations.dfn import DFN_OPTIONS, build_dfn
from fusionlab.experiments.ablations.dupsampling import MODEL_OPTIONS as DUPSAMPLING_OPTIONS
from fusionlab.experiments.ablations.dupsampling import build_dupsampling
from fusionlab.experiments.ablations.gff import MODEL_OPTIONS as GFF_OPTIONS
from fusionlab.experiments.ablations.gff import build_gffnet
from fusionlab.experiments.spec import BuildContext, Variant, as_tuple
from fusionlab.models import FCN, FPN, GCN, ExFuse, UNet
from fusionlab.models.base import SegmentationModel


@dataclass(frozen=True)
class ModelSpec:
    """A buildable model: its builder and the options it accepts.

    Attributes:
        build: ``build(context, **options) -> SegmentationModel``.
        options: option name -> one-line help.
        summary: one line for ``--help``.
    """

    build: Callable[..., SegmentationModel]
    options: dict[str, str] = field(default_factory=dict)
    summary: str = ""


def _top_down(cls):
    def build(ctx: BuildContext, levels=LEVELS) -> SegmentationModel:
        return cls(ctx.num_classes, build_encoder(ctx.profile), as_tuple(levels),
                   ctx.profile.channels)
    return build


def _fcn(ctx: BuildContext) -> SegmentationModel:
    return FCN(ctx.num_classes, build_encoder(ctx.profile), ctx.profile.channels)


def _gcn(ctx: BuildContext, blocks=None) -> SegmentationModel:
    return GCN(ctx.num_classes, build_encoder(ctx.profile, blocks and as_tuple(blocks)))


def _exfuse(ctx: BuildContext, blocks=None, **modules) -> SegmentationModel:
    return ExFuse(ctx.num_classes, build_encoder(ctx.profile, blocks and as_tuple(blocks)),
                  **modules)


_LEVELS_HELP = "encoder levels fused, e.g. levels=c3,c4,c5 (default all four)"
_BLOCKS_HELP = "residual blocks per stage c2..c5, e.g. blocks=1,2,4,1 (default: the profile's)"

MODELS: dict[str, ModelSpec] = {
    "fcn": ModelSpec(_fcn, {}, "FCN: predict from c5, no fusion"),
    "fpn": ModelSpec(_top_down(FPN), {"levels": _LEVELS_HELP}, "FPN: top-down fusion by addition"),
    "unet": ModelSpec(_top_down(UNet), {"levels": _LEVELS_HELP},
                      "UNet: top-down fusion by concatenation"),
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
    "gff": ModelSpec(build_gffnet, GFF_OPTIONS, "PSPNet with Gated Fully Fusion and the Dense "
                                                "Feature Pyramid (fusion=none: PSPNet)"),
    "dfn": ModelSpec(build_dfn, DFN_OPTIONS, "DFN: Smooth and Border Networks, each module "
                                             "switchable (none: the FCN-4-style baseline)"),
    "dupsampling": ModelSpec(build_dupsampling, DUPSAMPLING_OPTIONS,
                             "DUpsampling decoder, or its bilinear twin (head=bilinear)"),
}


def build_model(variant: Variant | str, context: BuildContext, **options) -> SegmentationModel:
    """Build a model of the table.

    Args:
        variant: a ``Variant`` or a ``MODELS`` key (then ``options`` are its options).
        context: classes, profile and training set.

    Raises:
        ValueError: an unknown model or option (names the ones that exist).
    """
    if isinstance(variant, str):
        variant = Variant(variant, options)
    if variant.model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {variant.model!r}")
    spec = MODELS[variant.model]
    unknown = sorted(set(variant.options) - set(spec.options))
    if unknown:
        raise ValueError(f"model {variant.model!r} has no option {unknown}; its options are "
                         f"{sorted(spec.options) or 'none'}")
    return spec.build(context, **variant.options)


def parse_options(words: list[str]) -> dict[str, Any]:
    """Command-line options to keyword arguments: ``name`` -> True, ``name=a,b`` -> a tuple,
    ``name=3`` -> 3, ``name=0.5`` -> 0.5, ``name=false`` -> False, ``name=text`` -> "text".
    One value of a list option (``levels=c5``) is a plain value; the builders take it as a
    list of one (``spec.as_tuple``).

    Raises:
        ValueError: an empty name or a repeated option.
    """
    def value(text: str):
        if "," in text:
            return tuple(value(t) for t in text.split(",") if t)
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    options: dict[str, Any] = {}
    for word in words:
        name, sep, text = word.partition("=")
        if not name:
            raise ValueError(f"expected name or name=value, got {word!r}")
        if name in options:
            raise ValueError(f"option {name!r} given twice")
        options[name] = value(text) if sep else True
    return options
