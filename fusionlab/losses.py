"""Losses: cross-entropy with an ignore index, and the deep-supervision sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab import IGNORE_INDEX
from fusionlab.models.base import SegOutput


def check_target(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    """Raise ``ValueError`` unless ``target`` (N, H, W) fits ``logits`` (N, K, H, W) and holds
    labels in 0..K-1 or ``ignore_index``."""
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected logits (N, K, H, W) and target (N, H, W) of the same N, H, W, "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")
    labelled = target[target != ignore_index]
    if labelled.numel() and (labelled.min() < 0 or labelled.max() >= logits.shape[1]):
        raise ValueError(f"target labels must lie in 0..{logits.shape[1] - 1} or be "
                         f"{ignore_index} (ignored), got values {labelled.min().item()}.."
                         f"{labelled.max().item()}")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-wise cross-entropy averaged over labelled pixels.

    Args:
        logits: class scores (N, K, H, W).
        target: int64 labels (N, H, W); ``ignore_index`` pixels contribute nothing.
        weight: optional class weights (K,).

    Returns:
        A scalar. With class weights, the mean is weighted (PyTorch's convention).
        0 (with gradient) if no pixel is labelled.

    Raises:
        ValueError: mismatched shapes or labels outside 0..K-1 (see ``check_target``).
    """
    check_target(logits, target, ignore_index)
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)


class DeepSupervisionLoss(nn.Module):
    """Main loss plus weighted auxiliary losses: L = CE(logits) + sum_a w_a * CE(aux_a).

    Deep supervision (Lee et al., "Deeply-Supervised Nets", AISTATS 2015) as used by ExFuse
    (semantic supervision, Sec. 3.1), DFN (Sec. 3.3) and PSPNet's auxiliary loss.

    Args:
        aux_weight: weight of every auxiliary output, or a dict name -> weight (names not in
            the dict get weight 0 and are skipped).
        ignore_index: ignored label.
        class_weight: optional (K,) class weights for the main and auxiliary terms.

    Shape:
        ``SegOutput`` (logits (N, K, H, W), aux each (N, K, H, W)), target (N, H, W) ->
        (total scalar, dict of the unweighted parts ``{"main": ..., "aux/<name>": ...}``).
    """

    def __init__(self, aux_weight: float | dict[str, float] = 0.4,
                 ignore_index: int = IGNORE_INDEX, class_weight: torch.Tensor | None = None):
        super().__init__()
        self.aux_weight, self.ignore_index = aux_weight, ignore_index
        self.register_buffer("class_weight", class_weight)

    def weight_of(self, name: str) -> float:
        """The weight of the auxiliary output ``name`` (0 means it is skipped)."""
        if isinstance(self.aux_weight, dict):
            return float(self.aux_weight.get(name, 0.0))
        return float(self.aux_weight)

    def forward(self, output: SegOutput, target: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        main = cross_entropy(output.logits, target, self.ignore_index, self.class_weight)
        parts, total = {"main": main.detach()}, main
        for name, aux in output.aux.items():
            w = self.weight_of(name)
            if w == 0:
                continue
            term = cross_entropy(aux, target, self.ignore_index, self.class_weight)
            parts[f"aux/{name}"] = term.detach()
            total = total + w * term
        return total, parts
