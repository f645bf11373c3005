"""The training loop: readable, one function per concern.

SGD with momentum and the poly learning-rate schedule lr = lr0 * (1 - step / steps)^0.9, as
all four papers train (e.g. DFN Sec. 4.1, DUpsampling Sec. 4); AdamW as an option. Mixed
precision and ``cudnn.benchmark`` on CUDA. Checkpoints are written atomically and resumed
exactly: a run interrupted and resumed ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fusionlab.io import atomic_write
from fusionlab.losses import DeepSupervisionLoss
from fusionlab.metrics import SegmentationMetrics
from fusionlab.models.base import SegmentationModel


@dataclass
class TrainConfig:
    """How to train. Units: steps are optimiser updates, lr per update, seconds of wall time.

    Attributes:
        steps: number of optimiser steps.
        batch_size: images per step.
        lr: base learning rate lr0 of the poly schedule.
        optimizer: ``"sgd"`` (momentum, the papers' choice) or ``"adamw"``.
        momentum, weight_decay, poly_power: as named (papers: 0.9, 1e-4, 0.9).
        aux_weight: weight of each auxiliary (deep-supervision) loss.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        amp: mixed precision (float16 autocast and gradient scaling); used on CUDA only.
        num_workers: DataLoader worker processes.
        seed: seeds parameters' initialisation order, shuffling and augmentation.
        eval_batch_size: images per evaluation batch.
        checkpoint: file to save to and resume from (``None``: no checkpoints).
        checkpoint_every: steps between checkpoints.
        log_every: steps averaged into one history entry.
        progress: show a tqdm progress bar.
    """

    steps: int = 1000
    batch_size: int = 8
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    aux_weight: float = 0.4
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    seed: int = 0
    eval_batch_size: int = 16
    checkpoint: str | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    progress: bool = True


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        history: one dict per ``log_every`` steps: ``step``, ``loss`` (mean over the window),
            ``lr``, ``images_per_s``.
        metrics: ``SegmentationMetrics.compute()`` on the validation set (empty without one).
        train_seconds: wall time of the optimisation in this call, in seconds.
    """

    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    train_seconds: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch: the one place randomness is seeded."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU.

    Raises:
        ValueError: ``"cuda"`` requested but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(device)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; no weight decay on biases and normalisation weights."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")


def poly_schedule(optimizer, steps: int, power: float):
    """lr(step) = lr0 * (1 - step / steps) ** power (Chen et al., DeepLab, Sec. 4.1)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / steps) ** power)


def training_batches(dataset: Dataset, cfg: TrainConfig, start_step: int, pin: bool):
    """Endless shuffled batches, starting at ``start_step``.

    Epoch e is shuffled with seed (cfg.seed, e) and its augmentation drawn from torch's
    random state seeded the same way, so the batch at any step is fixed by (seed, step):
    resuming replays the loading of the batches already used in the current epoch.

    Raises:
        ValueError: a dataset smaller than one batch.
    """
    per_epoch = len(dataset) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch "
                         f"of {cfg.batch_size}")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        epoch_seed = cfg.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed)
        loader = DataLoader(dataset, cfg.batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(epoch_seed),
                            num_workers=cfg.num_workers, pin_memory=pin)
        for i, batch in enumerate(loader):
            if i >= skip:
                yield batch
        epoch, skip = epoch + 1, 0


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` through ``atomic_write``: a crash leaves either the old or the new
    checkpoint, never a truncated one."""
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code is unpickled)."""
    return torch.load(path, map_location=device, weights_only=True)


def train(model: SegmentationModel, train_set: Dataset, val_set: Dataset | None = None,
          cfg: TrainConfig | None = None) -> TrainResult:
    """Train ``model`` on ``train_set`` and evaluate on ``val_set``.

    Each step: a batch ``{"image": (B, 3, H, W), "mask": (B, H, W)}``, the forward pass, the
    deep-supervision loss (main + ``aux_weight`` x each auxiliary output), backward, update.

    Args:
        model: a ``SegmentationModel``.
        train_set: a dataset of samples as returned by ``CamVid``.
        val_set: optional evaluation set.
        cfg: a ``TrainConfig`` (defaults if ``None``).

    Returns:
        ``TrainResult`` with the loss history and the validation metrics.

    Raises:
        ValueError: a checkpoint written with a different ``steps``, ``batch_size`` or
            ``seed``; the errors of ``training_batches`` and the loss.
    """
    cfg = cfg or TrainConfig()
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    scheduler = poly_schedule(optimizer, cfg.steps, cfg.poly_power)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp)
    criterion = DeepSupervisionLoss(cfg.aux_weight).to(device)
    result, step = TrainResult(), 0

    if cfg.checkpoint and Path(cfg.checkpoint).is_file():
        state = load_checkpoint(cfg.checkpoint, device)
        for key in ("steps", "batch_size", "seed"):
            if state["config"][key] != getattr(cfg, key):
                raise ValueError(f"checkpoint {cfg.checkpoint} was written with {key}="
                                 f"{state['config'][key]}, this run has {getattr(cfg, key)}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, result.history = state["step"], state["history"]

    bar = tqdm(total=cfg.steps, initial=step, desc="training", disable=not cfg.progress,
               dynamic_ncols=True)
    window, t_window, t_start = [], time.perf_counter(), time.perf_counter()
    batches = training_batches(train_set, cfg, step, pin=cuda)
    while step < cfg.steps:
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)  # (B, 3, H, W)
        masks = batch["mask"].to(device, non_blocking=True)  # (B, H, W)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda and cfg.amp):
            loss, _ = criterion(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        window.append(loss.item())
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            entry = {"step": step, "loss": float(np.mean(window)),
                     "lr": scheduler.get_last_lr()[0],
                     "images_per_s": len(window) * cfg.batch_size / (now - t_window)}
            result.history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", img_s=f"{entry['images_per_s']:.1f}")
            window, t_window = [], now
        if cfg.checkpoint and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(cfg.checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "history": result.history,
                "config": dataclasses.asdict(cfg)})
    bar.close()
    result.train_seconds = time.perf_counter() - t_start
    if val_set is not None:
        result.metrics = evaluate(model, val_set, cfg.eval_batch_size, device, cfg.progress)
    return result


@torch.no_grad()
def predict(model: SegmentationModel, images: torch.Tensor) -> torch.Tensor:
    """Labels (N, H, W) of a batch of images (N, 3, H, W), in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    labels = model(images.to(device)).logits.argmax(1).cpu()  # (N, H, W)
    model.train(was_training)
    return labels


def evaluate(model: SegmentationModel, dataset: Dataset, batch_size: int = 16,
             device: torch.device | str | None = None, progress: bool = True) -> dict:
    """Metrics of ``model``'s logits over the whole ``dataset`` (see ``SegmentationMetrics``).

    Returns:
        ``SegmentationMetrics.compute()`` plus ``"classes"`` (the class names, when the
        dataset has ``CLASSES``) and ``"eval_seconds"``.
    """
    return evaluate_outputs(model, dataset, batch_size, device, progress, names=("main",))["main"]


@torch.no_grad()
def evaluate_outputs(model: SegmentationModel, dataset: Dataset, batch_size: int = 16,
                     device: torch.device | str | None = None, progress: bool = True,
                     names: Sequence[str] | None = None) -> dict[str, dict]:
    """Metrics of the main prediction (``"main"``) and of each auxiliary prediction (by its
    ``SegOutput.aux`` name) over the whole ``dataset``, e.g. how well each stage of a deeply
    supervised encoder segments on its own.

    Args:
        names: the outputs to evaluate (default: ``"main"`` and every auxiliary output).

    Returns:
        output name -> ``SegmentationMetrics.compute()`` plus ``"classes"`` (when the dataset
        has ``CLASSES``) and ``"eval_seconds"`` (of the whole pass).

    Raises:
        ValueError: a name that is neither ``"main"`` nor one of the model's auxiliary outputs.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    metrics: dict[str, SegmentationMetrics] = {}
    t0 = time.perf_counter()
    loader = DataLoader(dataset, batch_size, shuffle=False)
    for batch in tqdm(loader, desc="evaluating", disable=not progress, leave=False):
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            out = model(batch["image"].to(device))
        scores = {"main": out.logits, **out.aux}  # each (B, K, H, W)
        wanted = list(scores) if names is None else list(names)
        unknown = [n for n in wanted if n not in scores]
        if unknown:
            raise ValueError(f"unknown outputs {unknown}; the model gives {list(scores)}")
        for name in wanted:
            metrics.setdefault(name, SegmentationMetrics(model.num_classes)).update(
                scores[name].argmax(1), batch["mask"].to(device))
    model.train(was_training)
    seconds = time.perf_counter() - t0
    results = {}
    for name, m in metrics.items():
        results[name] = m.compute()
        if getattr(dataset, "CLASSES", None):
            results[name]["classes"] = list(dataset.CLASSES)
        results[name]["eval_seconds"] = seconds
    return results
