"""The one table of model builders, shared by the command line and the experiments.

A model is named by a key of ``MODELS`` and a few options, e.g. ``("exfuse", {"ss": True,
"dap": True})``; an experiment's variants are such pairs (``Variant``), and the command line
spells them ``--model exfuse --modules ss dap``. A builder receives the ``BuildContext``: the
number of classes, the profile and the training set (a head fitted to the training labels, such
as DUpsampling's, needs it).
"""

from __future__ import annotations

from typing import Any

from fusionlab.experiments.ablations import MODULES
from fusionlab.experiments.spec import BuildContext, ModelSpec, Variant
from fusionlab.models.base import SegmentationModel


MODELS: dict[str, ModelSpec] = {
    name: spec for module in MODULES for name, spec in module.MODELS.items()}
"""Model name -> ``ModelSpec``: every paper's models, from the ablation modules (chapter 1's
``fcn``, ``fpn`` and ``unet``; ``gcn`` and ``exfuse``; ``gff``; ``dfn``; ``dupsampling``)."""


def build_model(variant: Variant | str, context: BuildContext, **options) -> SegmentationModel:
    """Build a model of the table.

    Args:
        variant: a ``Variant`` or a ``MODELS`` key (then ``options`` are its options).
        context: classes, profile and training set.

    Raises:
        ValueError: an unknown model or option (names the ones that exist), or a value out of
            range.
        TypeError: an option value of the wrong type (e.g. ``dfp="maybe"``), named by the
            model's builder.
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
