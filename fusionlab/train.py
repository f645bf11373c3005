"""The training loop: readable, one function per concern.

SGD with momentum and the poly learning-rate schedule lr = lr0 * (1 - step / steps)^0.9, as
all four papers train (e.g. DFN Sec. 4.1, DUpsampling Sec. 4); AdamW as an option. The speed
mode (autocast precision, channels-last memory format) is chosen from what the device supports
(``fusionlab.speed``); losses and metrics stay in float32. Checkpoints
(``fusionlab.checkpoints``) are written atomically and resumed exactly on the CPU: a run
interrupted and resumed ends with the same weights as an uninterrupted one. Evaluation lives in
``fusionlab.evaluation``. Bad input, a diverging loss and a checkpoint that does not fit stop
the run with an error that says what happened and where.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from fusionlab import distributed
from fusionlab.checkpoints import (check_checkpoint_path, check_weights, load_checkpoint,
                                   save_checkpoint)
from fusionlab.distributed import World
from fusionlab.evaluation import Indexed, check_images, evaluate
from fusionlab.losses import SegmentationLoss
from fusionlab.models.base import SegmentationModel
from fusionlab.provenance import git_commit
from fusionlab.speed import PRECISIONS, SpeedMode, choose_speed_mode, resolve_device

RESUME_FIELDS = ("steps", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                 "poly_power", "aux_weight", "seed", "precision")
"""``TrainConfig`` fields that shape the optimisation: a run resumes only when they match."""


@dataclass
class TrainConfig:
    """How to train. Units: steps are optimiser updates, lr per update, seconds of wall time.

    Repeatability: call ``seed_everything(seed)`` before building the model to seed its
    initialisation; ``train`` itself seeds the shuffling and augmentation of every epoch from
    ``seed``. With both, a run on the CPU is repeatable and a resumed run ends exactly where an
    uninterrupted one does. On CUDA neither holds exactly: some CUDA kernels are not
    deterministic and ``cudnn.benchmark`` picks kernels by timing.

    Attributes:
        steps: number of optimiser steps (>= 1).
        batch_size: images per step (>= 1; BatchNorm needs 2 or more where a feature map
            shrinks to one pixel).
        lr: base learning rate lr0 of the poly schedule (> 0).
        optimizer: ``"sgd"`` (momentum, the papers' choice) or ``"adamw"``.
        momentum, weight_decay, poly_power: as named (papers: 0.9, 1e-4, 0.9).
        aux_weight: weight of the cross-entropy on each auxiliary output, for models that do
            not declare their own auxiliary losses (see ``SegmentationLoss``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
            ``"mps"`` (see ``resolve_device``).
        precision: autocast precision: ``"auto"`` (see ``choose_speed_mode``), ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` (CUDA only, with gradient scaling).
        channels_last: channels-last memory format: ``"auto"``, ``True`` or ``False``.
        num_workers: DataLoader worker processes (>= 0).
        seed: seeds the shuffling and augmentation of the batches (not the initialisation:
            see above).
        eval_batch_size: images per evaluation batch (>= 1).
        checkpoint: file to save to and resume from (``None``: no checkpoints).
        checkpoint_every: steps between checkpoints (>= 1).
        log_every: steps averaged into one history entry (>= 1).
        progress: show a tqdm progress bar (on the first process of a distributed run), unless
            ``TQDM_DISABLE=1`` hides every bar.
        sync_bn: batch norm statistics over every process of a distributed run
            (``SyncBatchNorm``): ``"auto"`` (on CUDA with several processes: the papers'
            setting of a few images per GPU), ``True`` or ``False``. PyTorch synchronises
            batch norm on GPUs only; on the CPU each process normalises its own share.

    Raises:
        ValueError: a count below its minimum, a non-positive or non-finite ``lr``, a negative
            weight, an unknown ``optimizer``, ``precision`` or ``channels_last``.
        TypeError: a count that is not an ``int``.
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
    precision: str = "auto"
    channels_last: str | bool = "auto"
    num_workers: int = 0
    seed: int = 0
    eval_batch_size: int = 16
    checkpoint: str | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    progress: bool = True
    sync_bn: str | bool = "auto"

    def __post_init__(self):
        minimum = {"steps": 1, "batch_size": 1, "eval_batch_size": 1, "checkpoint_every": 1,
                   "log_every": 1, "num_workers": 0, "seed": None}
        for name, least in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TrainConfig.{name} must be an int, got {value!r}")
            if least is not None and value < least:
                raise ValueError(f"TrainConfig.{name} must be at least {least}, got {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a finite number > 0, got {self.lr}")
        for name in ("momentum", "weight_decay", "poly_power", "aux_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got "
                                 f"{getattr(self, name)}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.channels_last not in ("auto", True, False):
            raise ValueError(f"channels_last must be 'auto', True or False, got "
                             f"{self.channels_last!r}")
        if self.sync_bn not in ("auto", True, False):
            raise ValueError(f"sync_bn must be 'auto', True or False, got {self.sync_bn!r}")


class TrainingDiverged(RuntimeError):
    """The loss (or, at a checkpoint, a weight) became NaN or infinite.

    Attributes:
        step: the optimiser step (1-based) at which it happened.
    """

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        history: one dict per ``log_every`` steps: ``step``, ``loss`` (mean over the window),
            ``lr``, ``images_per_s``.
        metrics: ``evaluate`` on the validation set (empty without one).
        train_seconds: wall time of the optimisation, in seconds. A resumed run adds the
            seconds its checkpoint recorded, so the figure covers all its steps (the steps
            trained after the last checkpoint and lost with the interruption are not counted).
        seconds_before: the seconds of ``train_seconds`` spent before this call (recorded by
            the checkpoint it resumed from; 0 for a run trained in one call).
        speed: the ``SpeedMode`` used, as a dict (``SpeedMode.as_dict``).
        commits: the commits of the code that trained the run (``provenance.git_commit``),
            oldest first: one for a run trained in one call; a run resumed from a checkpoint
            adds the ones its checkpoint recorded (``"unknown"`` for a checkpoint of an older
            fusionlab that did not record them), each named once per stretch of calls at that
            commit.
    """

    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    speed: dict = field(default_factory=dict)
    seconds_before: float = 0.0
    commits: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch: the one place randomness is seeded. Call it before
    building a model to make its initialisation repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; no weight decay on biases and normalisation weights.

    Raises:
        ValueError: an unknown ``cfg.optimizer``.
    """
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


class ShareOfEpoch(DistributedSampler):
    """A ``DistributedSampler`` that deals out the permutation a single process's shuffled
    ``DataLoader`` draws from the same seed, so that P processes see the batches of one.

    The single process's loader (``shuffle=True`` and a generator seeded with ``seed``) first
    draws its workers' base seed from the generator, then ``randperm``; this sampler draws the
    same two and gives process r the positions r, r + P, r + 2P, ... of the permutation. Its
    t-th share of B / P images then holds the positions t B + r + P j (j < B / P): the P
    shares of step t are the positions t B .. (t + 1) B - 1, the single process's batch t.

    Args:
        dataset: the training set.
        num_replicas, rank: P and this process's rank.
        seed: the epoch's seed.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas, rank, shuffle=True, seed=seed, drop_last=True)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        torch.empty((), dtype=torch.int64).random_(generator=g)  # the loader's base seed
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        return iter(perm[self.rank:self.total_size:self.num_replicas])


def training_batches(dataset: Dataset, cfg: TrainConfig, start_step: int, pin: bool,
                     place: World = World()):
    """Endless shuffled batches, starting at ``start_step``; each batch also holds
    ``"dataset_index"`` (B,), the indices of its samples.

    Epoch e is shuffled with seed (cfg.seed, e) and its augmentation drawn from torch's
    random state seeded the same way, so the batch at any step is fixed by (seed, step):
    resuming replays the loading of the batches already used in the current epoch.

    In a distributed run (``place``) each process loads its share, cfg.batch_size / P images
    of every batch, through ``ShareOfEpoch`` (a ``DistributedSampler``): the P shares of a
    step make up the images of that step's batch in one process (their augmentation is drawn
    by each process, from the epoch seed and its rank).

    Raises:
        ValueError: a dataset smaller than one batch; a batch that the processes cannot share
            equally.
    """
    per_epoch = len(dataset) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch "
                         f"of {cfg.batch_size}")
    if cfg.batch_size % place.size:
        raise ValueError(f"a batch of {cfg.batch_size} images cannot be shared equally by "
                         f"{place.size} processes; use a multiple of {place.size}")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        epoch_seed = cfg.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed + 1_000_003 * place.rank)
        if place.distributed:
            sampler = ShareOfEpoch(Indexed(dataset), place.size, place.rank, seed=epoch_seed)
            loader = DataLoader(Indexed(dataset), cfg.batch_size // place.size, sampler=sampler,
                                drop_last=True, num_workers=cfg.num_workers, pin_memory=pin)
        else:
            loader = DataLoader(Indexed(dataset), cfg.batch_size, shuffle=True, drop_last=True,
                                generator=torch.Generator().manual_seed(epoch_seed),
                                num_workers=cfg.num_workers, pin_memory=pin)
        for i, batch in enumerate(loader):
            if i >= per_epoch:  # a padded last share of the distributed sampler
                break
            if i >= skip:
                yield batch
        epoch, skip = epoch + 1, 0


def forward_training(model: SegmentationModel, images: torch.Tensor, step: int):
    """``model(images)`` in training mode, with a clear error where BatchNorm sees one value
    per channel (a batch of one whose feature map shrinks to a single pixel).

    Shape:
        images (B, 3, H, W) -> ``SegOutput``.

    Raises:
        ValueError: that BatchNorm case, suggesting a larger batch or larger images.
    """
    try:
        return model(images)
    except ValueError as err:
        if "Expected more than 1 value per channel" not in str(err):
            raise
        raise ValueError(
            f"step {step}: BatchNorm needs more than one value per channel in training, but "
            f"a batch of {images.shape[0]} image(s) of {images.shape[-2]} x "
            f"{images.shape[-1]} reaches a feature map of one pixel; use batch_size >= 2 "
            f"or larger images") from err


# ---- the loop's helpers -------------------------------------------------------------------

class TrainingLog:
    """The loss history: one entry per ``log_every`` steps, the partial window saved with the
    checkpoint so a resumed run logs the same numbers as an uninterrupted one.

    Attributes:
        history: entries ``{"step", "loss", "lr", "images_per_s"}``.
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.history: list[dict] = []
        self.window: list[float] = []
        self.window_start = time.perf_counter()
        # disable only when asked: an explicit disable=False would override TQDM_DISABLE=1
        self.bar = tqdm(total=cfg.steps, desc="training", dynamic_ncols=True,
                        **({} if cfg.progress else {"disable": True}))

    def record(self, step: int, loss: float, lr: float) -> None:
        """Add the loss of ``step``; close the window every ``log_every`` steps and at the end."""
        self.window.append(loss)
        self.bar.update(1)
        if step % self.cfg.log_every and step != self.cfg.steps:
            return
        now = time.perf_counter()
        entry = {"step": step, "loss": float(np.mean(self.window)), "lr": lr,
                 "images_per_s": len(self.window) * self.cfg.batch_size
                 / (now - self.window_start)}
        self.history.append(entry)
        self.bar.set_postfix(loss=f"{entry['loss']:.3f}", img_s=f"{entry['images_per_s']:.1f}")
        self.window, self.window_start = [], now

    def state_dict(self) -> dict:
        """``{"history", "window" (losses of the open window), "window_seconds"}``."""
        return {"history": self.history, "window": self.window,
                "window_seconds": time.perf_counter() - self.window_start}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()``: the open window goes on where it stopped."""
        self.history, self.window = list(state["history"]), list(state["window"])
        self.window_start = time.perf_counter() - state["window_seconds"]


@dataclass
class TrainingState:
    """What a checkpoint restores besides the weights: optimiser, schedule, gradient scaler,
    the step reached, the log, the seconds of training before this call (``seconds_before``)
    and the commits of the code that trained it (``commits``, this call's last);
    ``saved_step`` is the step of the last checkpoint written, ``started`` the
    ``time.perf_counter()`` at which this call's optimisation began."""

    cfg: TrainConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    log: TrainingLog
    step: int = 0
    saved_step: int | None = None
    seconds_before: float = 0.0
    commits: list[str] = field(default_factory=lambda: [git_commit()])
    started: float = field(default_factory=time.perf_counter)

    def train_seconds(self) -> float:
        """Seconds of optimisation of this run so far, over every call that trained it."""
        return self.seconds_before + time.perf_counter() - self.started

    @classmethod
    def start(cls, model: torch.nn.Module, cfg: TrainConfig, speed: SpeedMode) -> TrainingState:
        optimizer = make_optimizer(model, cfg)
        return cls(cfg, optimizer, poly_schedule(optimizer, cfg.steps, cfg.poly_power),
                   torch.amp.GradScaler(speed.device, enabled=speed.grad_scaling),
                   TrainingLog(cfg))


def resume(run: TrainingState, model: torch.nn.Module, device: torch.device) -> None:
    """Restore ``run`` and ``model`` from ``run.cfg.checkpoint``.

    Raises:
        ValueError: a checkpoint of another model (checked first), a ``RESUME_FIELDS`` field
            that differs from the checkpoint's or that an older fusionlab's does not record
            (``check_resumable``: the model is left as it was), an unreadable file. One
            without the training time (an older fusionlab's) resumes with a warning; the time
            before it is not counted.
    """
    cfg = run.cfg
    state = load_checkpoint(cfg.checkpoint, device)
    check_resumable(model, cfg, state)  # before anything is loaded into the model
    model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.log.load_state_dict(state["log"])
    run.step = run.saved_step = state["step"]
    if "train_seconds" not in state:  # an older fusionlab's: the time before it is unknown
        warnings.warn(f"checkpoint {cfg.checkpoint} records no training time (written by an "
                      f"older fusionlab): train_seconds counts the steps after step "
                      f"{run.step} only", stacklevel=3)
    run.seconds_before = state.get("train_seconds", 0.0)
    # the code of the calls before this one; an older fusionlab's checkpoint does not say
    before = list(state.get("commits", ["unknown"]))
    run.commits = before + [c for c in run.commits if before[-1:] != [c]]
    run.log.bar.update(run.step)


def check_resumable(model: torch.nn.Module, cfg: TrainConfig, state: dict,
                    source: str | None = None) -> None:
    """Check, without loading anything, that checkpoint ``state`` (``load_checkpoint``)
    continues a run of ``model`` configured as ``cfg``: weights that fit the model
    (``check_weights``, checked first), every ``RESUME_FIELDS`` field the same.

    Args:
        source: the checkpoint as the weights' error names it (default
            ``"checkpoint CFG.CHECKPOINT"``).

    Raises:
        ValueError: weights of another model; a field that differs (names it and both
            values), or that the checkpoint does not record (an older fusionlab's).
    """
    check_weights(model, state["model"], source or f"checkpoint {cfg.checkpoint}")
    saved = state.get("config", {})
    for key in RESUME_FIELDS:
        if key not in saved:
            raise ValueError(f"checkpoint {cfg.checkpoint} records no {key} (written by an "
                             f"older fusionlab); start a new run with another checkpoint file")
        if saved[key] != getattr(cfg, key):
            raise ValueError(f"checkpoint {cfg.checkpoint} was written with {key}="
                             f"{saved[key]!r}, this run has {key}={getattr(cfg, key)!r}; "
                             f"resume with the same {key} or use another checkpoint file")


def save(run: TrainingState, model: torch.nn.Module, speed: SpeedMode) -> None:
    """Write the checkpoint ``run.cfg.checkpoint``, after checking that every weight is finite.

    Raises:
        TrainingDiverged: a NaN or infinite weight or buffer (the previous checkpoint is kept).
    """
    cfg, weights = run.cfg, model.state_dict()
    bad = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise TrainingDiverged(f"training diverged: {len(bad)} weights are not finite after "
                               f"step {run.step} (e.g. {bad[0]}); {_kept(run)}", run.step)
    save_checkpoint(cfg.checkpoint, {
        "model": weights, "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
        "step": run.step, "log": run.log.state_dict(), "config": dataclasses.asdict(cfg),
        "train_seconds": run.train_seconds(), "commits": run.commits,
        "speed": speed.as_dict()})
    run.saved_step = run.step


def _kept(run: TrainingState) -> str:
    if run.saved_step is None:
        return "no checkpoint was written"
    return f"the checkpoint {run.cfg.checkpoint} of step {run.saved_step} is kept"


def train_step(model: SegmentationModel, criterion: SegmentationLoss, batch: dict,
               run: TrainingState, speed: SpeedMode, device: torch.device,
               net: torch.nn.Module | None = None) -> float:
    """One optimiser step on ``batch``; returns its loss (float32, before the update; in a
    distributed run the mean over the processes).

    Args:
        net: the module that runs the forward pass, ``model`` itself or its
            ``DistributedDataParallel`` wrapper (which averages the gradients).

    Shape:
        batch ``{"image": (B, 3, H, W) float32, "mask": (B, H, W) int64,
        "dataset_index": (B,)}``.

    Raises:
        TrainingDiverged: a NaN or infinite loss (no update is made).
        TypeError, ValueError: see ``check_images`` and ``forward_training``; the loss's.
    """
    step = run.step + 1
    check_images(batch["image"], model, f"step {step}", batch.get("dataset_index"))
    images = batch["image"].to(device, non_blocking=True,
                               memory_format=speed.memory_format)  # (B, 3, H, W)
    masks = batch["mask"].to(device, non_blocking=True)  # (B, H, W)
    with speed.autocast():
        output = forward_training(net or model, images, step)
    loss, _ = criterion(output, masks)
    value = distributed.mean_over_processes(loss.item())  # every process sees a divergence
    if not math.isfinite(value):
        raise TrainingDiverged(f"training diverged: the loss is {value} at step {step} (lr "
                               f"{run.scheduler.get_last_lr()[0]:.3g}); {_kept(run)}",
                               step)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    return value


def train(model: SegmentationModel, train_set: Dataset, val_set: Dataset | None = None,
          cfg: TrainConfig | None = None) -> TrainResult:
    """Train ``model`` on ``train_set`` and evaluate on ``val_set``.

    Each step: a batch ``{"image": (B, 3, H, W), "mask": (B, H, W)}``, checked
    (``check_images``), the forward pass under the speed mode's autocast, the loss
    (``SegmentationLoss.for_model``: main + the auxiliary terms) in float32, backward, update.
    Seed the initialisation yourself (``seed_everything`` before building the model).

    Args:
        model: a ``SegmentationModel``.
        train_set: a dataset of samples as returned by ``CamVid``.
        val_set: optional evaluation set (scored by ``evaluate``).
        cfg: a ``TrainConfig`` (defaults if ``None``).

    Started by ``torchrun --nproc_per_node=N``, the N processes train the one model with
    ``DistributedDataParallel`` (see ``fusionlab.distributed``): each takes its share of every
    batch of ``cfg.batch_size`` images (``training_batches``), the gradients are averaged, the
    first process alone writes the checkpoint (which every process resumes from: on several
    machines its folder must be shared), and the validation set is scored in shares whose
    counts are added up.

    Returns:
        ``TrainResult`` with the loss history, the validation metrics and the speed mode.

    Raises:
        TrainingDiverged: a NaN or infinite loss or weight; nothing is saved after it.
        ValueError: a checkpoint path that is a folder (before training); a checkpoint of
            other ``RESUME_FIELDS``, of another model or unreadable; the errors of
            ``training_batches``, ``train_step`` and the loss.
    """
    cfg = cfg or TrainConfig()
    device = resolve_device(cfg.device)
    place = distributed.connect(device.type)
    if place.distributed and device.type == "cuda":
        device = torch.device("cuda", place.local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    speed = choose_speed_mode(device, cfg.precision, cfg.channels_last)
    if cfg.checkpoint:
        check_checkpoint_path(cfg.checkpoint)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if not place.is_main:
        cfg = dataclasses.replace(cfg, progress=False)
    if place.distributed and (cfg.sync_bn is True
                              or (cfg.sync_bn == "auto" and device.type == "cuda")):
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device, memory_format=speed.memory_format).train()
    criterion = SegmentationLoss.for_model(model, cfg.aux_weight)
    run = TrainingState.start(model, cfg, speed)
    if cfg.checkpoint and Path(cfg.checkpoint).is_file():
        resume(run, model, device)
    net = model
    if place.distributed:  # averages the gradients over the processes in backward
        net = DistributedDataParallel(model, device_ids=[device.index]
                                      if device.type == "cuda" else None,
                                      find_unused_parameters=False)
    batches = training_batches(train_set, cfg, run.step, device.type == "cuda", place)
    run.started = time.perf_counter()
    while run.step < cfg.steps:
        loss = train_step(model, criterion, next(batches), run, speed, device, net)
        run.step += 1
        run.log.record(run.step, loss, run.scheduler.get_last_lr()[0])
        if cfg.checkpoint and (run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps):
            if place.is_main:  # one writer; every process resumes from its file
                save(run, model, speed)
            distributed.barrier()
    run.log.bar.close()
    result = TrainResult(run.log.history, {}, run.train_seconds(), speed.as_dict(),
                         run.seconds_before, run.commits)
    if val_set is not None:
        result.metrics = evaluate(model, val_set, cfg.eval_batch_size, device, cfg.progress,
                                  speed=speed)
    return result
