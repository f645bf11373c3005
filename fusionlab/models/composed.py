"""Composing the papers' ideas: DFN's border supervision added to any model.

The four papers change different parts of a segmentation network: ExFuse and GFF the fusion,
DFN the supervision (and the fusion), DUpsampling the head. Nothing in any paper says whether
their gains add up. ``BorderSupervised`` adds DFN's Border Network and its focal loss to any
``SegmentationModel``; every model with a ``head`` factory takes the DUpsampling head
(``fusionlab.models.dupsampling.dupsampling_head``). Together they build, from the library's
parts, e.g. GFF fusion + DFN's borders + a DUpsampling head.

In the book: chapter 6, "The four papers head to head" (``book/chapters/06-head-to-head.ipynb``);
what it trains: experiment ``head-to-head`` in
``fusionlab/experiments/ablations/head_to_head.py``.
"""

from __future__ import annotations

import torch

from fusionlab import losses
from fusionlab.models.base import SegmentationModel
from fusionlab.models.dfn import BorderNetwork, border_loss_terms

__all__ = ["BorderSupervised"]


class BorderSupervised(SegmentationModel):
    """A model plus DFN's Border Network on its encoder, trained with the border focal loss.

    DFN, CVPR 2018, Sec. 3.2-3.3: the Border Network reads the encoder's stages c2..c5 bottom
    up and predicts the semantic borders made from the labels; its loss, lambda x the focal
    loss on each of its four heads, is added to the model's own loss. The Border Network only
    shapes the encoder's features during training: the model's logits do not read it, so at
    test time it can be dropped (``model.model`` is the model alone).

    Args:
        model: any ``SegmentationModel``; its auxiliary terms (``aux_losses()``, when it
            declares them) are kept.
        border_weight: lambda, the weight of each border head's focal loss (0.1 in the paper).
        focal: ``"correct"`` or ``"official"`` (see ``fusionlab.models.dfn.FOCAL_LOSSES``).
        border_channels: C_b, the Border Network's width.

    Attributes:
        model: the wrapped model (sharing its encoder with this one).
        border: the ``BorderNetwork``.

    Shape:
        images (N, 3, H, W) -> ``SegOutput``: the model's logits (N, K, H, W) and auxiliary
        outputs, plus ``aux["border_c2"]`` .. ``aux["border_c5"]`` (N, 1, H, W).

    Raises:
        TypeError: a ``model`` that is not a ``SegmentationModel``; a ``border_weight`` that is
            not a number.
        ValueError: a model that already has border outputs (a DFN with its Border Network);
            a negative or non-finite ``border_weight``; an unknown ``focal``;
            ``border_channels`` < 1.

    Differences from the paper:
        DFN trains its Border Network together with its Smooth Network; here it joins another
        decoder. See ``BorderNetwork`` for the network's own differences.
    """

    def __init__(self, model: SegmentationModel, border_weight: float = 0.1,
                 focal: str = "correct", border_channels: int = 32):
        if not isinstance(model, SegmentationModel):
            raise TypeError(f"model must be a SegmentationModel, got {type(model).__name__}")
        if getattr(model, "border", None) is not None:
            raise ValueError(f"{type(model).__name__} already has a Border Network")
        self._terms = border_loss_terms(border_weight, focal)  # checks weight and focal
        super().__init__(model.num_classes, model.encoder)
        self.model = model
        self.border = BorderNetwork(model.encoder.out_channels, border_channels)

    def decode(self, features: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, aux = self.model.decode(features)  # (N, K, h, w), the model's own aux
        borders = self.border(features)  # {"c2": (N, 1, H/4, W/4), ...}
        return logits, {**aux, **{f"border_{lv}": b for lv, b in borders.items()}}

    def aux_losses(self) -> dict[str, losses.AuxLoss]:
        """The model's own auxiliary terms and the four border terms."""
        declared = getattr(self.model, "aux_losses", None)
        return {**(declared() if callable(declared) else {}), **self._terms}
