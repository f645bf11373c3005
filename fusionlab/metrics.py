"""Segmentation metrics accumulated over a whole dataset."""

from __future__ import annotations

import math

import torch

from fusionlab import IGNORE_INDEX
from fusionlab.datasets.boundaries import dilate, label_boundaries


class SegmentationMetrics:
    """Confusion matrix, mIoU, per-class IoU, pixel accuracy and boundary F-score.

    The confusion matrix is summed over every image seen, and the IoUs are computed from it
    once at the end: IoU_c = TP_c / (TP_c + FP_c + FN_c) over the whole dataset (the PASCAL VOC
    and Cityscapes protocol), never a mean of per-image or per-batch IoUs.

    **Absent classes.** A class that appears neither in the targets nor in the predictions has
    no IoU (0/0): its entry is NaN and it is excluded from the mean. A class that is predicted
    but never present has IoU 0 and counts.

    **Boundary F-score** (after Csurka et al., BMVC 2013, and the DAVIS contour measure):
    boundary pixels of prediction and target are those that touch another class
    (``label_boundaries``); precision is the share of predicted boundary pixels within
    ``tolerance`` pixels (chessboard distance) of a true boundary pixel, recall the share of
    true boundary pixels within ``tolerance`` of a predicted one; F = 2PR / (P + R), with the
    counts summed over the dataset. Pixels whose target is ignored are excluded.

    Args:
        num_classes: K.
        ignore_index: target label excluded everywhere.
        tolerance: boundary tolerance d in pixels.

    Shape:
        ``update(prediction, target)``: prediction int (N, H, W) labels or float (N, K, H, W)
        scores (argmax taken), target int (N, H, W).

    Raises:
        ValueError: mismatched shapes, or target labels outside 0..K-1 and ``ignore_index``.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, tolerance: int = 2):
        self.num_classes, self.ignore_index, self.tolerance = num_classes, ignore_index, tolerance
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.boundary_counts = torch.zeros(4, dtype=torch.int64)  # pred hit, pred, true hit, true

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.dim() == 4:
            prediction = prediction.argmax(1)  # (N, H, W)
        if prediction.shape != target.shape or target.dim() != 3:
            raise ValueError(f"expected prediction and target of shape (N, H, W), got "
                             f"{tuple(prediction.shape)} and {tuple(target.shape)}")
        valid = target != self.ignore_index
        t, p = target[valid].long(), prediction[valid].long()
        if t.numel() and (t.min() < 0 or t.max() >= self.num_classes):
            raise ValueError(f"target labels must lie in 0..{self.num_classes - 1} or be "
                             f"{self.ignore_index}, got {t.min().item()}..{t.max().item()}")
        k = self.num_classes
        self.confusion += torch.bincount(t * k + p, minlength=k * k).reshape(k, k).cpu()

        true_edge = label_boundaries(target, self.ignore_index)  # (N, H, W)
        pred_edge = label_boundaries(prediction.masked_fill(~valid, self.ignore_index),
                                     self.ignore_index)  # (N, H, W)
        pred_hit = pred_edge & dilate(true_edge, self.tolerance)
        true_hit = true_edge & dilate(pred_edge, self.tolerance)
        self.boundary_counts += torch.stack([pred_hit.sum(), pred_edge.sum(),
                                             true_hit.sum(), true_edge.sum()]).cpu()

    def compute(self) -> dict:
        """Return ``{"miou", "iou" (list of K, NaN for absent), "pixel_accuracy",
        "boundary_f", "boundary_precision", "boundary_recall"}`` as plain floats."""
        cm = self.confusion.double()
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        present = ~torch.isnan(iou)
        miou = iou[present].mean().item() if present.any() else math.nan
        total = cm.sum().item()
        ph, pn, th, tn = (c.item() for c in self.boundary_counts)
        precision = ph / pn if pn else math.nan
        recall = th / tn if tn else math.nan
        f = (2 * precision * recall / (precision + recall)
             if pn and tn and precision + recall > 0 else (0.0 if pn and tn else math.nan))
        return {"miou": miou, "iou": iou.tolist(),
                "pixel_accuracy": tp.sum().item() / total if total else math.nan,
                "boundary_f": f, "boundary_precision": precision, "boundary_recall": recall}

