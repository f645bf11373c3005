"""What a segmentation model returns: below the models and the losses, which both use it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SegOutput:
    """What a segmentation model returns.

    Attributes:
        logits: class scores (N, K, H, W) at the input size.
        aux: named auxiliary predictions for deep supervision, each (N, K_aux, H, W) at the
            input size (empty when the model has none). Names are stable per model, e.g.
            ``"c3"`` for a head on stage c3.
    """

    logits: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
