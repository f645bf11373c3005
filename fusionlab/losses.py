"""Losses: cross-entropy with an ignore index, the binary focal loss for border maps, and the
weighted sum over a model's outputs (main prediction plus auxiliary ones)."""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusionlab import IGNORE_INDEX
from fusionlab.outputs import SegOutput

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A loss ``fn(logits, target) -> scalar``: logits of one output, target the (N, H, W) labels."""


def _check_integer_target(target: torch.Tensor) -> None:
    if target.is_floating_point() or target.is_complex():
        raise TypeError(f"target must hold integer labels (e.g. int64), got dtype {target.dtype}")


def check_target(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    """Check that ``target`` (N, H, W) fits ``logits`` (N, K, H, W) and holds labels in
    0..K-1 or ``ignore_index``.

    Raises:
        TypeError: a floating-point target.
        ValueError: mismatched shapes or labels outside 0..K-1.
    """
    _check_integer_target(target)
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected logits (N, K, H, W) and target (N, H, W) of the same N, H, W, "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")
    # one pass over the pixels, no compaction: this runs for every output at every step
    if ((target < 0) | ((target >= logits.shape[1]) & (target != ignore_index))).any():
        labelled = target[target != ignore_index]
        raise ValueError(f"target labels must lie in 0..{logits.shape[1] - 1} or be "
                         f"{ignore_index} (ignored), got values {labelled.min().item()}.."
                         f"{labelled.max().item()}")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-wise cross-entropy averaged over labelled pixels.

    Args:
        logits: class scores (N, K, H, W).
        target: integer labels (N, H, W); ``ignore_index`` pixels contribute nothing.
        weight: optional class weights (K,).

    Returns:
        A scalar. With class weights, the mean is weighted (PyTorch's convention).
        0 (with gradient) if no pixel is labelled.

    Raises:
        TypeError, ValueError: see ``check_target``.
    """
    check_target(logits, target, ignore_index)
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target.long(), weight=weight, ignore_index=ignore_index)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Binary focal loss in the alpha_t form, averaged over the labelled pixels.

    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, Eq. 5:
    FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t), with p = sigmoid(logit), p_t = p and
    alpha_t = alpha where the target is 1, p_t = 1 - p and alpha_t = 1 - alpha where it is 0.
    DFN (Yu et al., CVPR 2018, Sec. 3.2, Eq. 4) puts it on the Border Network's outputs;
    alpha = 0.25, gamma = 2 are the values of DFN's official code (the paper does not give
    them). log(p_t) is computed as logsigmoid(+-logit) and (1 - p_t)^gamma as
    exp(gamma * logsigmoid(-+logit)), so the loss and its gradient stay finite for large
    logits and any gamma >= 0. With gamma = 0 it is the alpha-weighted
    binary cross-entropy. Positive, and falls as p_t rises.

    Args:
        logits: border scores (N, 1, H, W) or (N, H, W).
        target: (N, H, W) with values 0 (no border), 1 (border) or ``ignore_index``; integer
            or bool.
        alpha: weight of the positive class, in [0, 1].
        gamma: focusing parameter, >= 0.

    Returns:
        A scalar: the mean over pixels whose target is not ``ignore_index`` (ignored pixels
        count in neither the sum nor the number of pixels); 0 (with gradient) if none is
        labelled.

    Shape:
        logits (N, 1, H, W) or (N, H, W), target (N, H, W) -> scalar.

    Raises:
        TypeError: a floating-point target.
        ValueError: logits with more than one channel, shapes that do not match, target
            values other than 0, 1 or ``ignore_index``, alpha outside [0, 1], gamma < 0.

    Differences from the paper:
        DFN's Eq. 4 is FL(p_k) = -(1 - p_k)^gamma log(p_k), without alpha; its official code
        uses the alpha_t form above, which we follow.
    """
    if not 0 <= alpha <= 1 or not gamma >= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and gamma >= 0, got alpha={alpha}, "
                         f"gamma={gamma}")
    logits, target = _binary_map_inputs(logits, target, ignore_index, "focal_loss")
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    positive = target[valid] == 1  # (P,) over the labelled pixels
    signed = torch.where(positive, logits.float()[valid], -logits.float()[valid])  # (P,)
    log_pt = F.logsigmoid(signed)
    modulating = torch.exp(gamma * F.logsigmoid(-signed))  # (1 - p_t)^gamma, finite gradient
    alpha_t = torch.where(positive, alpha, 1 - alpha)
    return -(alpha_t * modulating * log_pt).mean()


def _binary_map_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                       loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a one-channel score map and its 0/1/ignore target; return both as (N, H, W),
    the target as int64.

    Raises:
        TypeError: a floating-point target.
        ValueError: logits with more than one channel, shapes that do not match, target
            values other than 0, 1 or ``ignore_index``.
    """
    _check_integer_target(target)
    if logits.dim() == 4:
        if logits.shape[1] != 1:
            raise ValueError(f"{loss} takes one border channel, got logits of shape "
                             f"{tuple(logits.shape)}")
        logits = logits[:, 0]  # (N, H, W)
    if logits.shape != target.shape or target.dim() != 3:
        raise ValueError(f"expected logits (N, 1, H, W) or (N, H, W) and target (N, H, W), got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    target = target.long()
    bad = target[(target != ignore_index) & (target != 0) & (target != 1)]
    if bad.numel():
        raise ValueError(f"{loss} targets must be 0, 1 or {ignore_index} (ignored), got "
                         f"{bad.unique()[:5].tolist()}")
    return logits, target


def official_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
                        gamma: float = 2.0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """DFN's official border loss, transcribed with its bug, for comparison only: never train
    with it expecting a focal loss.

    TorchSeg (the DFN authors' code), ``furnace/seg_opr/loss_opr.py``, ``SigmoidFocalLoss``;
    the bug is TorchSeg issue #16 (acknowledged by the author, never fixed). The code means to
    evaluate the binary cross-entropy with logits through the stable identity
    ``max(-x, 0) + log(exp(-max(-x, 0)) + exp(-x - max(-x, 0)))`` but feeds it
    p = sigmoid(x) instead of the logit x (its own comment: "TODO: use the pred instead of
    pred_sigmoid"), and its positive part keeps only ``p - p * t`` of the identity. With
    t the 0/1 target it computes, per pixel,

        pos = (1 - p)^gamma * (p - p * t)
        neg = p^gamma * log(1 + exp(-p))
        loss = -(alpha * pos + (1 - alpha) * neg),

    then the mean over ALL pixels, ignored ones counting as 0 in the sum but 1 in the number
    of pixels. Both parts are >= 0, so the loss is never positive (from -0.0006 to -0.234 over
    logits -6..6 at the defaults), and it falls as p rises whatever the target: its gradient
    with respect to the logit is negative for target 0 and for target 1, so gradient descent
    pushes every pixel towards "border". Compare ``focal_loss``, the loss the paper describes.

    Args:
        logits: border scores (N, 1, H, W) or (N, H, W).
        target: (N, H, W) with values 0, 1 or ``ignore_index``; integer or bool.
        alpha: the code's weight of the "positive part" (0.25 in DFN's configuration).
        gamma: the code's exponent (2 in DFN's configuration).
        ignore_index: label of ignored pixels (they contribute 0 but count in the mean).

    Returns:
        A scalar, <= 0.

    Shape:
        logits (N, 1, H, W) or (N, H, W), target (N, H, W) -> scalar.

    Raises:
        TypeError: a floating-point target.
        ValueError: logits with more than one channel, shapes that do not match, target
            values other than 0, 1 or ``ignore_index``.
    """
    logits, target = _binary_map_inputs(logits, target, ignore_index, "official_focal_loss")
    p = torch.sigmoid(logits.float())  # (N, H, W)
    mask = (target != ignore_index).float()  # (N, H, W)
    t = mask * target.float()  # ignored pixels become 0, as in the code
    max_val = (-p).clamp(min=0)  # always 0: the logit's stabiliser, applied to p > 0
    pos_part = (1 - p) ** gamma * (p - p * t)
    neg_part = p ** gamma * (max_val + ((-max_val).exp() + (-p - max_val).exp()).log())
    return (-(alpha * pos_part + (1 - alpha) * neg_part) * mask).mean()


def loss_response(loss_fn: LossFn, logits: torch.Tensor,
                  target: int) -> tuple[np.ndarray, np.ndarray]:
    """A binary map loss and its gradient at each of a range of logits, each scored as a
    one-pixel map with the same target: the curves that show what a loss pushes a logit
    towards (chapter 4 compares the focal loss with the official code's transcription).

    Args:
        loss_fn: ``loss_fn(logits (1, 1, 1), target (1, 1, 1)) -> scalar``, e.g. ``focal_loss``.
        logits: (P,) the logits to score.
        target: 0 or 1, the pixel's label.

    Returns:
        ``(values, gradients)``: (P,) each, the loss and d loss / d logit at each logit.

    Raises:
        ValueError: logits that are not one-dimensional, or a target other than 0 or 1.
    """
    if logits.dim() != 1 or target not in (0, 1):
        raise ValueError(f"(P,) logits and a target of 0 or 1 expected, got logits of shape "
                         f"{tuple(logits.shape)} and target {target!r}")
    x = logits.detach().clone().float().requires_grad_()
    label = torch.tensor([[[target]]])                                      # (1, 1, 1)
    values = torch.stack([loss_fn(v.view(1, 1, 1), label) for v in x])     # (P,)
    values.sum().backward()
    return values.detach().numpy(), x.grad.numpy()


class AuxLoss(NamedTuple):
    """One auxiliary term of ``SegmentationLoss``: ``weight * fn(aux_logits, labels)``.

    ``fn`` receives the auxiliary output's logits and the (N, H, W) class labels; a loss on
    another target (e.g. DFN's border maps) derives it from the labels inside ``fn``.
    A weight of 0 leaves the output out of the loss.
    """

    weight: float
    fn: LossFn = cross_entropy


class SegmentationLoss(nn.Module):
    """Main loss plus weighted auxiliary losses: L = main(logits) + sum_a w_a * fn_a(aux_a).

    Deep supervision (Lee et al., "Deeply-Supervised Nets", AISTATS 2015) as used by ExFuse
    (semantic supervision, Sec. 3.1), GFF (an auxiliary loss of weight 0.4, Sec. 4) and DFN
    (cross-entropy on every stage head plus 0.1 x the focal loss on every border head,
    Sec. 3.3). All terms are computed in float32, also under autocast.

    A model may declare its own auxiliary terms with a method ``aux_losses()`` returning
    ``{output name: AuxLoss(weight, fn)}`` (a ``(weight, fn)`` tuple is accepted);
    ``SegmentationLoss.for_model`` uses it, and otherwise cross-entropy with one weight for
    every auxiliary output.

    Args:
        aux: one weight for cross-entropy on every auxiliary output, or a mapping output name
            -> ``AuxLoss``, ``(weight, fn)`` or a weight (cross-entropy). With a mapping, every
            auxiliary output must be named in it and every name must be an output.
        main: the loss of the main prediction (default: ``cross_entropy``).

    Shape:
        ``SegOutput`` (logits (N, K, H, W), aux each (N, K_a, H, W)), target (N, H, W) ->
        (total scalar, dict of the unweighted parts ``{"main": ..., "aux/<name>": ...}``,
        detached; outputs of weight 0 are neither computed nor listed).

    Raises:
        ValueError: a negative or non-finite weight (at construction); with a mapping, an
            auxiliary output without a loss or a loss without its output (at the call).
        TypeError: a mapping value that is not a weight, ``AuxLoss`` or ``(weight, fn)``.
    """

    def __init__(self, aux: float | Mapping[str, AuxLoss | tuple | float] = 0.4,
                 main: LossFn = cross_entropy):
        super().__init__()
        self.main = main
        if isinstance(aux, Mapping):
            self.aux: float | dict[str, AuxLoss] = {
                name: self._as_aux_loss(name, term) for name, term in aux.items()}
        else:
            self.aux = self._check_weight("aux", aux)

    @staticmethod
    def _check_weight(name: str, weight) -> float:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"the weight of {name!r} must be a finite number >= 0, "
                             f"got {weight!r}")
        return float(weight)

    @classmethod
    def _as_aux_loss(cls, name: str, term) -> AuxLoss:
        if isinstance(term, tuple) and len(term) == 2 and callable(term[1]):
            return AuxLoss(cls._check_weight(name, term[0]), term[1])
        if isinstance(term, (int, float)):
            return AuxLoss(cls._check_weight(name, term))
        raise TypeError(f"the loss of {name!r} must be a weight, AuxLoss(weight, fn) or "
                        f"(weight, fn), got {term!r}")

    @classmethod
    def for_model(cls, model: nn.Module, aux_weight: float = 0.4,
                  main: LossFn = cross_entropy) -> SegmentationLoss:
        """The loss for ``model``: its own ``aux_losses()`` when it declares them, else
        cross-entropy with ``aux_weight`` on every auxiliary output."""
        declared = getattr(model, "aux_losses", None)
        return cls(declared() if callable(declared) else aux_weight, main)

    def terms(self, names) -> dict[str, AuxLoss]:
        """The auxiliary terms for outputs ``names``, weight-0 terms included.

        Raises:
            ValueError: with a mapping, a name without a loss or a loss without its output.
        """
        names = list(names)
        if not isinstance(self.aux, dict):
            return {name: AuxLoss(self.aux) for name in names}
        missing = [n for n in names if n not in self.aux]
        absent = [n for n in self.aux if n not in names]
        if missing or absent:
            raise ValueError(f"auxiliary losses {sorted(self.aux)} do not match the model's "
                             f"auxiliary outputs {names}: outputs without a loss {missing} "
                             f"(give them weight 0 to leave them out), losses without an "
                             f"output {absent}")
        return {name: self.aux[name] for name in names}

    def forward(self, output: SegOutput, target: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        main = self.main(output.logits.float(), target)
        parts, total = {"main": main.detach()}, main
        for name, (weight, fn) in self.terms(output.aux).items():
            if weight == 0:
                continue
            term = fn(output.aux[name].float(), target)
            parts[f"aux/{name}"] = term.detach()
            total = total + weight * term
        return total, parts
