"""Prediction and evaluation: a model's labels for images, and its metrics over a whole
dataset, scored at the resolution the dataset stores its labels (in shares over the processes
of a distributed run)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from fusionlab import distributed
from fusionlab.layers import upsample_like
from fusionlab.metrics import ClassMeans, SegmentationMetrics
from fusionlab.models.base import SegmentationModel
from fusionlab.speed import SpeedMode, choose_speed_mode


class Indexed(Dataset):
    """``dataset`` whose samples also carry ``"dataset_index"``, so an error can name them."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "dataset_index": i}


def check_images(images: torch.Tensor, model: SegmentationModel, where: str,
                 indices: torch.Tensor | None = None) -> None:
    """Refuse a batch the model must not see: not float32, smaller than the model's output
    stride, or holding NaN or infinite pixels (in training one such pixel would poison
    BatchNorm's running statistics for good, so this runs before the forward pass).

    Args:
        where: how an error names the batch, e.g. ``"step 12"``.
        indices: the dataset indices of the batch's images, named in the error.

    Shape:
        images (B, 3, H, W) float32, H and W >= the model's output stride in pixels.

    Raises:
        TypeError: images that are not float32.
        ValueError: images smaller than the output stride; non-finite pixels.
    """
    if images.dtype != torch.float32:
        raise TypeError(f"{where}: images must be float32, got {images.dtype} "
                        f"(convert the dataset's images with .float())")
    strides = getattr(getattr(model, "encoder", None), "strides", None)
    stride = max(strides.values()) if strides else 1
    if images.dim() == 4 and min(images.shape[-2:]) < stride:
        raise ValueError(f"{where}: images of {images.shape[-2]} x {images.shape[-1]} pixels "
                         f"are smaller than the model's output stride of {stride} pixels; "
                         f"use images of at least {stride} x {stride}")
    finite = torch.isfinite(images.flatten(1)).all(1)  # (B,)
    if not finite.all():
        positions = (~finite).nonzero().flatten().tolist()
        named = "" if indices is None else f" (dataset indices {indices[positions].tolist()})"
        raise ValueError(f"{where}: images at batch positions {positions}{named} hold NaN or "
                         f"infinite pixels")


@torch.no_grad()
def predict(model: SegmentationModel, images: torch.Tensor,
            speed: SpeedMode | None = None) -> torch.Tensor:
    """Labels of a batch of images, in eval mode, on the model's device.

    Args:
        speed: autocast and memory format (default: ``choose_speed_mode`` of the device).

    Shape:
        images (N, 3, H, W) float32 -> labels (N, H, W) int64 on the CPU.

    Raises:
        TypeError, ValueError: see ``check_images``.
    """
    check_images(images, model, "predict")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    speed = speed or choose_speed_mode(device)
    with speed.autocast():
        logits = model(images.to(device, memory_format=speed.memory_format)).logits
    labels = logits.float().argmax(1).cpu()  # (N, H, W)
    model.train(was_training)
    return labels


@torch.no_grad()
def class_means(maps_of: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset,
                num_classes: int, count: int | None = None, batch_size: int = 8) -> ClassMeans:
    """The mean of per-pixel maps on each ground-truth class over a dataset (``ClassMeans``):
    how open a gate is, or how strong a feature, on the pixels of each class.

    Args:
        maps_of: images (n, 3, H, W) on the CPU -> maps (n, R, h, w), e.g. one gate per level;
            it moves the images to its model's device and back itself. Maps on a coarser grid
            than the labels are scored against the label at the nearest pixel; to interpolate
            the maps instead, return them at the images' size.
        dataset: items with ``"image"`` (3, H, W) and ``"mask"`` (H, W).
        num_classes: K.
        count: the first ``count`` items (``None``: all).
        batch_size: images per call of ``maps_of``.

    Returns:
        the ``ClassMeans``: ``compute()`` (R, K) with NaN for an absent class, ``overall()``,
        ``counts``.

    Raises:
        ValueError: an empty selection; maps that are not (n, R, h, w); see
            ``ClassMeans.update``.
    """
    total = len(dataset) if count is None else min(count, len(dataset))
    if total < 1:
        raise ValueError(f"class_means needs at least one item, got count={count} of a "
                         f"dataset of {len(dataset)}")
    means = ClassMeans(num_classes)
    for start in range(0, total, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, total))]
        images = torch.stack([item["image"] for item in items])  # (n, 3, H, W)
        labels = torch.stack([item["mask"] for item in items])  # (n, H, W)
        maps = maps_of(images).float().cpu()  # (n, R, h, w)
        if maps.dim() != 4:
            raise ValueError(f"maps_of must return (n, R, h, w) maps, got {tuple(maps.shape)}")
        if maps.shape[-2:] != labels.shape[-2:]:
            labels = F.interpolate(labels[:, None].float(), size=maps.shape[-2:],
                                   mode="nearest")[:, 0].long()  # (n, h, w)
        means.update(maps, labels)
    return means


def evaluate(model: SegmentationModel, dataset: Dataset, batch_size: int = 16,
             device: torch.device | str | None = None, progress: bool = True,
             speed: SpeedMode | None = None) -> dict:
    """Metrics of ``model``'s main prediction over the whole ``dataset`` (see
    ``evaluate_outputs``).

    Returns:
        ``SegmentationMetrics.compute()`` plus ``"eval_size"``, ``"classes"`` (when the
        dataset has ``CLASSES``) and ``"eval_seconds"``.
    """
    return evaluate_outputs(model, dataset, batch_size, device, progress, names=("main",),
                            speed=speed)["main"]


@torch.no_grad()
def evaluate_outputs(model: SegmentationModel, dataset: Dataset, batch_size: int = 16,
                     device: torch.device | str | None = None, progress: bool = True,
                     names: Sequence[str] | None = None,
                     speed: SpeedMode | None = None) -> dict[str, dict]:
    """Metrics of the main prediction (``"main"``) and of auxiliary predictions (by their
    ``SegOutput.aux`` name) over the whole ``dataset``, e.g. how well each stage of a deeply
    supervised encoder segments on its own.

    Labels are scored at the resolution the dataset stores them: a batch with ``"eval_mask"``
    (labels of the stored copy, before any resize to the training size) is scored against it,
    the logits upsampled bilinearly to its size (and converted to float32 first); otherwise
    against ``"mask"``.

    Args:
        names: the outputs to evaluate (default: ``"main"`` and every auxiliary output with
            one channel per class; e.g. a 1-channel border output is not a segmentation).
        speed: autocast and memory format (default: ``choose_speed_mode`` of the device), as
            in training.

    Returns:
        output name -> ``SegmentationMetrics.compute()`` plus ``"eval_size"`` ((H, W) in
        pixels of the labels scored), ``"classes"`` (when the dataset has ``CLASSES``) and
        ``"eval_seconds"`` (of the whole pass).

    Shape:
        batches ``{"image": (B, 3, H, W), "mask": (B, H, W)[, "eval_mask": (B, H0, W0)]}``.

    Raises:
        ValueError: a name that is neither ``"main"`` nor an auxiliary output, or an output
            without one channel per class; labels of different sizes across the dataset;
            see ``check_images``.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    speed = speed or choose_speed_mode(device)
    place = distributed.connect(device.type)
    if place.distributed:  # each process scores its share; the counts are added up below
        if len(dataset) < place.size:
            raise ValueError(f"{len(dataset)} evaluation images cannot be shared by "
                             f"{place.size} processes")
        dataset = Subset(dataset, range(place.rank, len(dataset), place.size))
    was_training = model.training
    model.to(device, memory_format=speed.memory_format).eval()
    metrics: dict[str, SegmentationMetrics] = {}
    sizes: set[tuple[int, int]] = set()
    t0 = time.perf_counter()
    loader = DataLoader(Indexed(dataset), batch_size, shuffle=False)
    hidden = {} if progress else {"disable": True}  # so that TQDM_DISABLE=1 hides it too
    for i, batch in enumerate(tqdm(loader, desc="evaluating", leave=False, **hidden)):
        check_images(batch["image"], model, f"evaluation batch {i}", batch["dataset_index"])
        with speed.autocast():
            out = model(batch["image"].to(device, memory_format=speed.memory_format))
        scores = {"main": out.logits, **out.aux}  # each (B, K_a, H, W)
        wanted = _scored_outputs(scores, names, model.num_classes)
        target = batch.get("eval_mask", batch["mask"]).to(device)  # (B, H0, W0)
        sizes.add(tuple(target.shape[-2:]))
        for name in wanted:
            logits = scores[name].float()
            if logits.shape[-2:] != target.shape[-2:]:
                logits = upsample_like(logits, target)  # (B, K, H0, W0)
            metrics.setdefault(name, SegmentationMetrics(model.num_classes)).update(
                logits.argmax(1), target)
    model.train(was_training)
    if len(sizes) > 1:
        raise ValueError(f"evaluation labels come in several sizes {sorted(sizes)}; a dataset "
                         f"is scored at one resolution")
    seconds = time.perf_counter() - t0
    results = {}
    for name, m in metrics.items():
        m.sum_over_processes()
        results[name] = m.compute()
        results[name]["eval_size"] = next(iter(sizes))
        classes = getattr(getattr(dataset, "dataset", dataset), "CLASSES", None)
        if classes:
            results[name]["classes"] = list(classes)
        results[name]["eval_seconds"] = seconds
    return results


def _scored_outputs(scores: dict[str, torch.Tensor], names: Sequence[str] | None,
                    num_classes: int) -> list[str]:
    """The outputs ``evaluate_outputs`` scores (see its ``names``)."""
    if names is None:
        return [n for n, s in scores.items() if n == "main" or s.shape[1] == num_classes]
    unknown = [n for n in names if n not in scores]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; the model gives {list(scores)}")
    narrow = {n: scores[n].shape[1] for n in names if scores[n].shape[1] != num_classes}
    if narrow:
        raise ValueError(f"outputs {narrow} (name: channels) do not have one channel per class "
                         f"({num_classes}); they cannot be scored as segmentations")
    return list(names)
