"""The training loop: readable, one function per concern.

SGD with momentum and the poly learning-rate schedule lr = lr0 * (1 - step / steps)^0.9, as
all four papers train (e.g. DFN Sec. 4.1, DUpsampling Sec. 4); AdamW as an option. The speed
mode (autocast precision, channels-last memory format) is chosen from what the device supports
(``choose_speed_mode``); losses and metrics stay in float32. Checkpoints are written atomically
and resumed exactly on the CPU: a run interrupted and resumed ends with the same weights as an
uninterrupted one. Bad input, a diverging loss and a checkpoint that does not fit stop the run
with an error that says what happened and where.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from fusionlab import distributed
from fusionlab.distributed import World
from fusionlab.io import atomic_write
from fusionlab.layers import upsample_like
from fusionlab.losses import SegmentationLoss
from fusionlab.metrics import SegmentationMetrics
from fusionlab.models.base import SegmentationModel

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

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
        progress: show a tqdm progress bar (on the first process of a distributed run).
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


@dataclass(frozen=True)
class SpeedMode:
    """How the model runs: autocast precision and memory format on one device type.

    Attributes:
        device: ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"`` (no autocast), ``"bf16"`` or ``"fp16"`` (autocast dtype).
        channels_last: whether weights and images use the channels-last memory format.
    """

    device: str
    precision: str
    channels_last: bool

    @property
    def grad_scaling(self) -> bool:
        """float16 gradients underflow without loss scaling; bfloat16 has float32's range."""
        return self.precision == "fp16"

    @property
    def memory_format(self) -> torch.memory_format:
        """``torch.channels_last`` or ``torch.contiguous_format``."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """``torch.bfloat16`` or ``torch.float16``; ``None`` for fp32 (no autocast)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def name(self) -> str:
        """A short label for tables, e.g. ``"fp32"`` or ``"channels_last+bf16"``."""
        return "+".join((["channels_last"] if self.channels_last else []) + [self.precision])

    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` for this mode (disabled for fp32)."""
        return torch.autocast(self.device, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def as_dict(self) -> dict:
        """Plain values for results files: ``{"device", "precision", "channels_last"}``."""
        return dataclasses.asdict(self)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX); elsewhere
    PyTorch emulates bfloat16, which is slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def choose_speed_mode(device: torch.device | str, precision: str = "auto",
                      channels_last: str | bool = "auto") -> SpeedMode:
    """The fastest safe way to train on ``device``, or the one asked for.

    ``"auto"`` precision: float16 autocast with gradient scaling on CUDA; bfloat16 autocast
    on a CPU with native bfloat16, else float32 (Apple's MPS too). ``"auto"`` channels-last: on
    an x86 CPU (AVX2 or AVX-512) with oneDNN, which runs convolutions channels-last without
    reordering; not on CUDA or MPS (contiguous, as before; not measured there). On a 2-core AVX-512/AMX Xeon
    (FPN on ``ResNetEncoder(widths=(32, 64, 128, 256))``, batch 8 at 120 x 160) channels-last
    trains about 1.2x faster than float32, channels-last with bfloat16 about 1.5x or more.

    Shape:
        no tensors; returns a ``SpeedMode``.

    Raises:
        ValueError: an unknown ``precision`` or ``channels_last``; ``"fp16"`` on the CPU;
            ``"bf16"`` on a CUDA device without bfloat16.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if channels_last not in ("auto", True, False):
        raise ValueError(f"channels_last must be 'auto', True or False, got {channels_last!r}")
    cuda, cpu = device.type == "cuda", device.type == "cpu"
    if precision == "auto":  # on Apple's MPS float32, as not measured there
        precision = "fp16" if cuda else ("bf16" if cpu and cpu_has_native_bf16() else "fp32")
    if precision == "fp16" and not cuda:
        raise ValueError("precision 'fp16' is offered on CUDA only; on the CPU use 'bf16' "
                         "or 'fp32'")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' requested but {device} has no bfloat16 support")
    if channels_last == "auto":
        channels_last = (cpu and torch.backends.mkldnn.is_available()
                         and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"))
    return SpeedMode(device.type, precision, bool(channels_last))


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
        train_seconds: wall time of the optimisation in this call, in seconds.
        speed: the ``SpeedMode`` used, as a dict (``SpeedMode.as_dict``).
    """

    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    speed: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch: the one place randomness is seeded. Call it before
    building a model to make its initialisation repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"mps"`` (Apple GPUs), checked to exist here.

    Raises:
        ValueError: an unknown device name, or a device this machine does not have (names
            what it has).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r} requested but torch.cuda.is_available() is "
                             "False")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device!r} requested but this machine has {count} CUDA "
                             f"device(s): cuda:0..cuda:{count - 1}")
    elif resolved.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' requested but torch.backends.mps.is_available() is "
                             "False")
    elif resolved.type != "cpu":
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    return resolved


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


class Indexed(Dataset):
    """``dataset`` whose samples also carry ``"dataset_index"``, so an error can name them."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "dataset_index": i}


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


# ---- checkpoints ---------------------------------------------------------------------------

def check_checkpoint_path(path: str | os.PathLike) -> None:
    """Fail before training, not at the first save: ``path`` must not be a folder and its
    folder must exist or be creatable.

    Raises:
        ValueError: ``path`` is a folder, or its parent cannot be a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder; give a file name, e.g. "
                         f"{path / 'run.pt'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise ValueError(f"checkpoint {path}: its folder {path.parent} cannot be created "
                         f"({err})") from err


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` through ``atomic_write``: a crash leaves either the old or the new
    checkpoint, never a truncated one."""
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint written by ``train`` with ``weights_only=True`` (no arbitrary code is
    unpickled).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty file, a file that is not a PyTorch checkpoint (e.g. text), or
            one without model weights; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is an empty file")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch's unpickler fails on foreign bytes in many ways
        head = path.read_bytes()[:16]
        raise ValueError(f"{path} is not a readable fusionlab checkpoint (starts with "
                         f"{head!r}; {type(err).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), Mapping):
        raise ValueError(f"{path} is a PyTorch file but not a fusionlab checkpoint (no model "
                         f"weights under 'model')")
    return state


def apply_weights(model: torch.nn.Module, weights: Mapping, source: str) -> None:
    """``model.load_state_dict(weights)``, or a short error with counts and a few names.

    Args:
        source: what the weights come from, for the message (e.g. ``"checkpoint run.pt"``).

    Raises:
        ValueError: weights of another model (counts of missing, unexpected and reshaped
            keys, with a few names).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    resized = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
               if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or resized:
        def few(names):
            return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ValueError(
            f"{source} holds weights of another model than this {type(model).__name__}: "
            f"{len(missing)} missing keys ({few(missing)}), {len(unexpected)} unexpected keys "
            f"({few(unexpected)}), {len(resized)} shapes differ (checkpoint vs model: "
            f"{few(resized)})")
    model.load_state_dict(weights)


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load the weights of checkpoint ``path`` into ``model`` (on the model's device).

    Returns:
        the whole checkpoint (``"step"``, ``"config"``, ...).

    Raises:
        FileNotFoundError, ValueError: see ``load_checkpoint``; ValueError: weights of another
            model (counts of missing, unexpected and reshaped keys, with a few names).
    """
    device = next(model.parameters()).device
    state = load_checkpoint(path, device)
    apply_weights(model, state["model"], f"checkpoint {path}")
    return state


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
        self.bar = tqdm(total=cfg.steps, desc="training",
                        disable=not cfg.progress, dynamic_ncols=True)

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
    the step reached and the log; ``saved_step`` is the step of the last checkpoint written."""

    cfg: TrainConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    log: TrainingLog
    step: int = 0
    saved_step: int | None = None

    @classmethod
    def start(cls, model: torch.nn.Module, cfg: TrainConfig, speed: SpeedMode) -> TrainingState:
        optimizer = make_optimizer(model, cfg)
        return cls(cfg, optimizer, poly_schedule(optimizer, cfg.steps, cfg.poly_power),
                   torch.amp.GradScaler(speed.device, enabled=speed.grad_scaling),
                   TrainingLog(cfg))


def resume(run: TrainingState, model: torch.nn.Module, device: torch.device) -> None:
    """Restore ``run`` and ``model`` from ``run.cfg.checkpoint``.

    Raises:
        ValueError: a ``RESUME_FIELDS`` field differs from the checkpoint's (names the field
            and both values), a checkpoint of another model, an unreadable file.
    """
    cfg = run.cfg
    state = load_checkpoint(cfg.checkpoint, device)
    saved = state.get("config", {})
    for key in RESUME_FIELDS:
        if key not in saved:
            raise ValueError(f"checkpoint {cfg.checkpoint} records no {key} (written by an "
                             f"older fusionlab); start a new run with another checkpoint file")
        if saved[key] != getattr(cfg, key):
            raise ValueError(f"checkpoint {cfg.checkpoint} was written with {key}="
                             f"{saved[key]!r}, this run has {key}={getattr(cfg, key)!r}; "
                             f"resume with the same {key} or use another checkpoint file")
    apply_weights(model, state["model"], f"checkpoint {cfg.checkpoint}")
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.log.load_state_dict(state["log"])
    run.step = run.saved_step = state["step"]
    run.log.bar.update(run.step)


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
    first process alone writes the checkpoint, and the validation set is scored in shares
    whose counts are added up.

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
    t_start = time.perf_counter()
    while run.step < cfg.steps:
        loss = train_step(model, criterion, next(batches), run, speed, device, net)
        run.step += 1
        run.log.record(run.step, loss, run.scheduler.get_last_lr()[0])
        if cfg.checkpoint and (run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps):
            if place.is_main:  # one writer; every process resumes from its file
                save(run, model, speed)
            distributed.barrier()
    run.log.bar.close()
    result = TrainResult(run.log.history, {}, time.perf_counter() - t_start, speed.as_dict())
    if val_set is not None:
        result.metrics = evaluate(model, val_set, cfg.eval_batch_size, device, cfg.progress,
                                  speed=speed)
    return result


# ---- prediction and evaluation ------------------------------------------------------------

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
    for i, batch in enumerate(tqdm(loader, desc="evaluating", disable=not progress,
                                   leave=False)):
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
