"""Segmentation metrics accumulated over a whole dataset: mIoU and the boundary F-score."""

from __future__ import annotations

import math

import numpy as np
import torch

from fusionlab import IGNORE_INDEX, distributed
from fusionlab.boundaries import dilate, label_boundaries

BOUNDARY_TOLERANCE = 0.0075
"""Default boundary tolerance as a fraction of the image diagonal (Csurka et al., BMVC 2013)."""


class SegmentationMetrics:
    """Confusion matrix, mIoU, per-class IoU, pixel accuracy and per-class boundary F-score.

    **IoU.** The confusion matrix is summed over every image seen, and the IoUs are computed
    from it once at the end: IoU_c = TP_c / (TP_c + FP_c + FN_c) over the whole dataset (the
    PASCAL VOC and Cityscapes protocol), never a mean of per-image or per-batch IoUs. A class
    that appears neither in the targets nor in the predictions has no IoU (0/0): its entry is
    NaN and it is excluded from the mean. A class that is predicted but never present has IoU 0
    and counts.

    **Boundary F-score** (Csurka, Larlus, Perronnin, "What is a good evaluation measure for
    semantic segmentation?", BMVC 2013; empty-set rules of the DAVIS benchmark's
    ``f_measure``, Perazzi et al., CVPR 2016). Pixels whose target is ignored are removed from
    prediction and target alike. Per image and per class c:

    - the boundary of c is the set of pixels of c with a 4-neighbour of another labelled class
      (``label_boundaries(labels) & (labels == c)``; the image frame and void are no boundary),
      taken in the prediction (B_p) and in the target (B_t);
    - theta = ``boundary_tolerance`` x the image diagonal, in pixels: with the default 0.0075,
      1.5 px at 120 x 160, 2.25 px at 180 x 240, 4.5 px at 360 x 480;
    - precision P = share of B_p within Euclidean distance theta of B_t, recall R = share of
      B_t within theta of B_p, F = 2PR / (P + R);
    - empty sets: B_p and B_t both empty -> P = R = 1 (F = 1); B_p empty only -> P = 1, R = 0;
      B_t empty only -> P = 0, R = 1 (both F = 0); P + R = 0 -> F = 0.

    The image's value is the mean over the classes present in that image, where present means
    at least one labelled pixel of the class in the target or in the prediction (so a class
    predicted where it is absent costs F = 0). The dataset's ``boundary_f`` is the mean over
    images (images without any labelled pixel have no class present and are skipped);
    ``boundary_precision`` and ``boundary_recall`` are averaged the same way (F is not computed
    from them). ``boundary_f_per_class[c]`` is the mean of class c's F over the images where
    c is present (NaN if it never is).

    Args:
        num_classes: K.
        ignore_index: target label excluded everywhere.
        boundary_tolerance: theta as a fraction of the image diagonal (>= 0; 0 demands exact
            boundary pixels).

    Shape:
        ``update(prediction, target)``: prediction int (N, H, W) labels or float (N, K, H, W)
        scores (argmax taken over K), target int (N, H, W).

    Raises:
        ValueError: bad ``num_classes`` or ``boundary_tolerance``; in ``update``: mismatched
            shapes, scores whose channel count is not K, predicted labels outside 0..K-1 or
            target labels outside 0..K-1 and ``ignore_index`` (each names the value).
        TypeError: in ``update``: inputs that are not tensors, float labels of shape
            (N, H, W) (they would be truncated: pass ``scores.argmax(1)`` or the scores).

    Differences from the paper:
        None in the definition. The matching is exact: a boundary pixel matches when its
        Euclidean distance to the other boundary is at most theta (a dilation by
        ``disk(theta)``). DAVIS's ``f_measure`` rounds theta up to a disk of radius
        ceil(theta), which would turn the 1.5 px at 120 x 160 into 2 px.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 boundary_tolerance: float = BOUNDARY_TOLERANCE):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if not (isinstance(boundary_tolerance, (int, float)) and boundary_tolerance >= 0):
            raise ValueError(f"boundary_tolerance must be a fraction of the image diagonal "
                             f">= 0, got {boundary_tolerance!r}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.boundary_tolerance = float(boundary_tolerance)
        self.reset()

    def reset(self) -> None:
        """Forget every image seen."""
        k = self.num_classes
        self.confusion = torch.zeros(k, k, dtype=torch.int64)
        self.boundary_images = 0  # images with at least one labelled pixel
        self.boundary_sums = torch.zeros(3, dtype=torch.float64)  # per-image mean F, P, R
        self.class_boundary_sums = torch.zeros(k, dtype=torch.float64)  # F of class c
        self.class_boundary_images = torch.zeros(k, dtype=torch.int64)  # images where c present

    def _labels(self, prediction: torch.Tensor, target: torch.Tensor
                ) -> tuple[np.ndarray, np.ndarray]:
        """Validate the inputs; return predicted and target labels as int64 numpy arrays.

        Shape:
            prediction int (N, H, W) or float (N, K, H, W), target int (N, H, W)
            -> int64 (N, H, W), int64 (N, H, W).
        """
        k = self.num_classes
        for name, x in (("prediction", prediction), ("target", target)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer labels, got dtype {target.dtype}")
        if prediction.dim() == 4:
            if prediction.shape[1] != k:
                raise ValueError(f"expected scores of shape (N, {k}, H, W) for {k} classes, got "
                                 f"{tuple(prediction.shape)}")
            prediction = prediction.argmax(1)  # (N, H, W)
        elif (prediction.is_floating_point() or prediction.is_complex()
              or prediction.dtype == torch.bool):
            raise TypeError(f"predicted labels of shape (N, H, W) must be integers, got dtype "
                            f"{prediction.dtype}; pass scores.argmax(1) or the (N, K, H, W) "
                            f"scores")
        if prediction.shape != target.shape or target.dim() != 3:
            raise ValueError(f"expected prediction and target of shape (N, H, W), got "
                             f"{tuple(prediction.shape)} and {tuple(target.shape)}")
        p = prediction.detach().cpu().numpy().astype(np.int64, copy=False)
        t = target.detach().cpu().numpy().astype(np.int64, copy=False)
        if p.size and (p.min() < 0 or p.max() >= k):
            raise ValueError(f"predicted labels must lie in 0..{k - 1}, got "
                             f"{p.min() if p.min() < 0 else p.max()}")
        labelled = t[t != self.ignore_index]
        if labelled.size and (labelled.min() < 0 or labelled.max() >= k):
            raise ValueError(f"target labels must lie in 0..{k - 1} or be {self.ignore_index}, "
                             f"got {labelled.min()}..{labelled.max()}")
        return p, t

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: its pixels to the confusion matrix, its images to the boundary F-score.

        The counting runs in numpy and OpenCV on the CPU (only the argmax of scores stays on
        their device): many small operations, which torch's thread pool slows down badly when
        the CPU is shared.

        Shape:
            prediction int (N, H, W) or float (N, K, H, W); target int (N, H, W).

        Raises:
            See the class.
        """
        prediction, target = self._labels(prediction, target)  # (N, H, W) each
        k = self.num_classes
        valid = target != self.ignore_index  # (N, H, W)
        pairs = target[valid] * k + prediction[valid]  # (V,) one index per labelled pixel
        self.confusion += torch.from_numpy(np.bincount(pairs, minlength=k * k).reshape(k, k))
        prediction = np.where(valid, prediction, self.ignore_index)  # (N, H, W)
        t_edges = label_boundaries(target, self.ignore_index)  # (N, H, W)
        p_edges = label_boundaries(prediction, self.ignore_index)  # (N, H, W)
        for arrays in zip(prediction, target, p_edges, t_edges):
            self._add_boundary_image(*arrays)

    def _add_boundary_image(self, prediction: np.ndarray, target: np.ndarray,
                            p_edge: np.ndarray, t_edge: np.ndarray) -> None:
        """Add the per-class boundary F of one image.

        Shape:
            prediction, target: int (H, W), ``ignore_index`` wherever the target is ignored;
            p_edge, t_edge: bool (H, W), their ``label_boundaries``.
        """
        h, w = target.shape
        k = self.num_classes
        labelled = target != self.ignore_index  # (H, W)
        present = (np.bincount(target[labelled], minlength=k)
                   + np.bincount(prediction[labelled], minlength=k)) > 0  # (K,)
        if not present.any():
            return
        classes = np.flatnonzero(present)[:, None, None]  # (C, 1, 1)
        t_edge = (target[None] == classes) & t_edge  # (C, H, W): boundary of each present class
        p_edge = (prediction[None] == classes) & p_edge  # (C, H, W)
        theta = self.boundary_tolerance * math.hypot(h, w)  # pixels
        t_near, p_near = dilate(t_edge, theta), dilate(p_edge, theta)  # (C, H, W) each
        p_hit = np.count_nonzero(p_edge & t_near, axis=(1, 2))  # (C,)
        t_hit = np.count_nonzero(t_edge & p_near, axis=(1, 2))  # (C,)
        p_n, t_n = np.count_nonzero(p_edge, axis=(1, 2)), np.count_nonzero(t_edge, axis=(1, 2))
        precision = np.where(p_n > 0, p_hit / np.maximum(p_n, 1), 1.0)  # (C,)
        recall = np.where(t_n > 0, t_hit / np.maximum(t_n, 1), 1.0)  # (C,)
        denominator = precision + recall
        f = np.where(denominator > 0, 2 * precision * recall / np.maximum(denominator, 1e-12),
                     0.0)  # (C,)
        self.boundary_images += 1
        self.boundary_sums += torch.tensor([f.mean(), precision.mean(), recall.mean()],
                                           dtype=torch.float64)
        present = torch.from_numpy(present)
        self.class_boundary_sums[present] += torch.from_numpy(f)
        self.class_boundary_images[present] += 1

    def sum_over_processes(self) -> None:
        """Add up what every process of a distributed run has seen (each scored its own shard
        of the dataset), so that ``compute`` gives the metrics of the whole dataset on every
        process; nothing for one process."""
        for name in ("confusion", "boundary_sums", "class_boundary_sums",
                     "class_boundary_images"):
            distributed.sum_over_processes(getattr(self, name))
        images = torch.tensor([self.boundary_images], dtype=torch.int64)
        self.boundary_images = int(distributed.sum_over_processes(images).item())

    def compute(self) -> dict:
        """The metrics over everything seen since the last ``reset``.

        Returns:
            ``{"miou", "iou" (list of K, NaN for absent classes), "pixel_accuracy",
            "boundary_f", "boundary_precision", "boundary_recall", "boundary_f_per_class"
            (list of K, NaN for a class never present), "boundary_images" (images scored),
            "boundary_tolerance"}`` as plain floats and ints. The dataset-level values are NaN
            only when no labelled pixel (for the boundary values: no image with one) was seen.
        """
        cm = self.confusion.double()
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        present = ~torch.isnan(iou)
        miou = iou[present].mean().item() if present.any() else math.nan
        total = cm.sum().item()
        n = self.boundary_images
        f, precision, recall = ((self.boundary_sums / n).tolist() if n else [math.nan] * 3)
        seen = self.class_boundary_images
        per_class = torch.where(seen > 0, self.class_boundary_sums / seen.clamp(min=1),
                                torch.full_like(self.class_boundary_sums, math.nan))
        return {"miou": miou, "iou": iou.tolist(),
                "pixel_accuracy": tp.sum().item() / total if total else math.nan,
                "boundary_f": f, "boundary_precision": precision, "boundary_recall": recall,
                "boundary_f_per_class": per_class.tolist(), "boundary_images": n,
                "boundary_tolerance": self.boundary_tolerance}


class ClassMeans:
    """The mean of per-pixel maps over the labelled pixels of each ground-truth class,
    accumulated over a dataset: e.g. how open a gate is, or how strong a feature, on the
    pixels of each class.

    The maps and the labels must be on one grid: resize either before ``update`` (the choice,
    interpolating the maps or taking the nearest label, is the caller's and is visible there).

    Args:
        num_classes: K.
        ignore_index: label of void pixels, counted for no class.

    Shape:
        ``update(maps, labels)``: maps (N, R, H, W) (R maps per image, e.g. one per level) or
        (N, H, W) (R = 1), labels (N, H, W). ``compute()`` -> (R, K) means; ``overall()`` ->
        (R,) means over every labelled pixel.

    Raises:
        ValueError: maps and labels of other shapes or grids, a label outside [0, K) other
            than ``ignore_index``, maps with another R than the earlier ones.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.sums: np.ndarray | None = None         # (R, K)
        self.counts = np.zeros(num_classes)          # (K,) labelled pixels per class

    def update(self, maps: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: maps (N, R, H, W) or (N, H, W), labels (N, H, W); see the class."""
        if maps.dim() == 3:
            maps = maps[:, None]                                          # (N, 1, H, W)
        if maps.dim() != 4 or labels.dim() != 3 or maps.shape[:1] + maps.shape[2:] != labels.shape:
            raise ValueError(f"maps (N, R, H, W) or (N, H, W) and labels (N, H, W) on one grid "
                             f"expected, got maps {tuple(maps.shape)} and labels "
                             f"{tuple(labels.shape)}")
        labelled = labels != self.ignore_index
        if ((labels[labelled] < 0) | (labels[labelled] >= self.num_classes)).any():
            raise ValueError(f"labels in [0, {self.num_classes}) or {self.ignore_index} "
                             f"expected, got values {labels[labelled].unique().tolist()}")
        if self.sums is None:
            self.sums = np.zeros((maps.shape[1], self.num_classes))
        elif self.sums.shape[0] != maps.shape[1]:
            raise ValueError(f"{self.sums.shape[0]} maps per image expected (as before), got "
                             f"{maps.shape[1]}")
        one_hot = torch.zeros(labels.shape[0], self.num_classes, *labels.shape[1:],
                              dtype=maps.dtype)                           # (N, K, H, W)
        one_hot.scatter_(1, labels.clamp(0, self.num_classes - 1)[:, None],
                         labelled[:, None].to(maps.dtype))                # void: all zeros
        self.counts += one_hot.sum((0, 2, 3)).double().numpy()
        self.sums += torch.einsum("nrhw,nkhw->rk", maps.detach().double(),
                                  one_hot.double()).numpy()

    def compute(self) -> np.ndarray:
        """(R, K) means; NaN for a class with no labelled pixel seen.

        Raises:
            ValueError: nothing accumulated yet.
        """
        if self.sums is None:
            raise ValueError("no maps accumulated yet: call update first")
        present = self.counts > 0
        return np.where(present, self.sums / np.maximum(self.counts, 1), np.nan)

    def overall(self) -> np.ndarray:
        """(R,) means over every labelled pixel seen, whatever its class.

        Raises:
            ValueError: nothing accumulated yet, or no labelled pixel.
        """
        if self.sums is None or self.counts.sum() == 0:
            raise ValueError("no labelled pixel accumulated yet")
        return self.sums.sum(1) / self.counts.sum()


class BorderScores:
    """How well a border map separates border pixels from the rest, accumulated over a
    dataset: the mean predicted probability on border pixels and elsewhere, and precision and
    recall at a threshold (DFN's Border Network, chapter 4).

    Args:
        threshold: probability above which a pixel counts as predicted border.
        ignore_index: target value of pixels left out.

    Shape:
        ``update(probabilities, target)``: (N, H, W) probabilities in [0, 1] and (N, H, W)
        targets of 0 (no border), 1 (border) or ``ignore_index`` (``BorderLoss().target``).

    Raises:
        ValueError: shapes that differ, target values other than 0, 1 or ``ignore_index``.
    """

    def __init__(self, threshold: float = 0.5, ignore_index: int = IGNORE_INDEX):
        self.threshold, self.ignore_index = threshold, ignore_index
        self.sums = np.zeros(4)      # p on borders, border pixels, p elsewhere, other pixels
        self.hits = np.zeros(3)      # true positives, predicted borders, true borders

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: (N, H, W) probabilities and targets; see the class."""
        if probabilities.shape != target.shape:
            raise ValueError(f"probabilities and target of one shape expected, got "
                             f"{tuple(probabilities.shape)} and {tuple(target.shape)}")
        border, other = target == 1, target == 0
        if not (border | other | (target == self.ignore_index)).all():
            raise ValueError(f"targets of 0, 1 or {self.ignore_index} expected, got values "
                             f"{target.unique().tolist()}")
        p = probabilities.detach().double()
        above = p > self.threshold
        self.sums += [float(p[border].sum()), float(border.sum()), float(p[other].sum()),
                      float(other.sum())]
        self.hits += [float((above & border).sum()), float((above & (border | other)).sum()),
                      float(border.sum())]

    def compute(self) -> dict[str, float]:
        """``on`` and ``off``: the mean probability on border pixels and on the others;
        ``precision`` (NaN if no pixel is above the threshold) and ``recall`` at the threshold;
        ``separation``: on - off."""
        on = float(self.sums[0] / max(self.sums[1], 1))
        off = float(self.sums[2] / max(self.sums[3], 1))
        precision = float(self.hits[0] / self.hits[1]) if self.hits[1] else math.nan
        return {"on": on, "off": off, "precision": precision,
                "recall": float(self.hits[0] / max(self.hits[2], 1)), "separation": on - off}
