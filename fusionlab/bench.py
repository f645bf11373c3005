"""Cost of a model: parameters, FLOPs (PyTorch's flop counter) and forward latency."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from fusionlab.losses import SegmentationLoss
from fusionlab.speed import PRECISION_NAMES, SpeedMode, choose_speed_mode
from fusionlab.train import TrainConfig, seed_everything, train


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_flops(model: torch.nn.Module, size: tuple[int, int], batch: int = 1) -> int:
    """FLOPs of one forward pass on a (batch, 3, H, W) input, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2 FLOPs; only the
    operators it knows are counted: convolutions and matrix products, not BN or ReLU)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, 3, *size, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def forward_latency(model: torch.nn.Module, size: tuple[int, int], batch: int = 1,
                    repeats: int = 10, warmup: int = 2, precision: str = "fp32") -> dict:
    """Forward-pass wall time in seconds over ``repeats`` runs after ``warmup`` runs, on a
    (batch, 3, H, W) input, in eval mode.

    Args:
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` under ``torch.autocast`` on the
            model's device (bf16 on a CPU without native bfloat16 runs, slowly, in emulation:
            see ``fusionlab.speed.cpu_has_native_bf16``).

    Returns:
        ``{"median_s", "min_s", "max_s", "repeats", "precision", "threads"}``; CUDA is
        synchronised around each run.

    Raises:
        ValueError: an unknown ``precision``.
    """
    device = next(model.parameters()).device
    if precision not in PRECISION_NAMES:
        raise ValueError(f"precision must be one of {tuple(PRECISION_NAMES)}, got {precision!r}")
    mode = SpeedMode(device.type, precision, False)
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, 3, *size, device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with mode.autocast():
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.train(was_training)
    return {"median_s": float(np.median(times)), "min_s": min(times), "max_s": max(times),
            "repeats": repeats, "precision": precision, "threads": torch.get_num_threads()}


def training_memory(model: torch.nn.Module, batch_size: int, size: tuple[int, int],
                    num_classes: int) -> dict:
    """The memory one training step holds at its peak, in bytes, measured on one step (forward,
    the model's loss, backward) of a random batch.

    On CUDA it is ``torch.cuda.max_memory_allocated`` over the step (everything allocated on
    the device, the batch included), with AdamW's two state tensors per parameter added. On the CPU, which has no allocator statistics, it is counted
    with PyTorch's saved-tensor hooks: the tensors autograd saves for the backward pass (each
    storage once, the parameters aside), plus the parameters, their gradients and AdamW's two state tensors. That
    count leaves out the transient buffers of single operators, so it is a lower bound of the
    process's peak; it is the part that grows with the batch and the resolution.

    Returns:
        ``{"total_bytes", "activation_bytes", "parameter_state_bytes", "batch_size", "size",
        "method"}``: the parameter states are the parameters, their gradients and AdamW's two
        states (4 x the parameters' bytes); on CUDA the activations are the rest of the peak.

    Raises:
        ValueError: ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    # parameters, gradients and AdamW's exp_avg and exp_avg_sq
    state = 4 * sum(p.numel() * p.element_size() for p in params)
    images = torch.randn(batch_size, 3, *size, device=device)  # (B, 3, H, W)
    labels = torch.randint(0, num_classes, (batch_size, *size), device=device)  # (B, H, W)
    loss_fn = SegmentationLoss.for_model(model)
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        loss_fn(model(images), labels)[0].backward()
        torch.cuda.synchronize()
        # the peak holds the parameters, the gradients and the activations; AdamW's two
        # states, which its first step creates, come on top
        peak = torch.cuda.max_memory_allocated(device) + state // 2
        activations = peak - state
        method = "torch.cuda.max_memory_allocated + AdamW's states"
    else:
        saved: dict[int, int] = {}
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

        def pack(t: torch.Tensor):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:  # the parameters are counted in the states
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn(model(images), labels)[0]
        loss.backward()
        activations = sum(saved.values())
        method = "saved-tensor hooks + parameter states (a lower bound)"
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {"total_bytes": activations + state, "activation_bytes": activations,
            "parameter_state_bytes": state, "batch_size": batch_size, "size": list(size),
            "method": method}


def training_step_time(model: torch.nn.Module, batch_size: int, size: tuple[int, int],
                       num_classes: int, steps: int = 3, warmup: int = 1) -> dict:
    """Seconds per training step of ``fusionlab.train.train`` (the model's own loss, AdamW,
    float32) on random batches held in memory, after ``warmup`` untimed steps. The model is
    trained by it: pass a copy to keep one.

    Returns:
        ``{"seconds_per_step", "steps", "batch_size", "size", "threads"}``.

    Raises:
        ValueError: ``steps`` or ``batch_size`` below 1.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    data = _FixedBatches(batch_size * max(steps, warmup, 1), size, num_classes)
    cfg = dict(batch_size=batch_size, lr=1e-3, optimizer="adamw", device="cpu", progress=False,
               precision="fp32", channels_last=False)
    if warmup:
        train(model, data, None, TrainConfig(steps=warmup, **cfg))
    timed = train(model, data, None, TrainConfig(steps=steps, **cfg))
    return {"seconds_per_step": timed.train_seconds / steps, "steps": steps,
            "batch_size": batch_size, "size": list(size), "threads": torch.get_num_threads()}


class _FixedBatches(torch.utils.data.Dataset):
    """``n`` random samples held in memory, so that timing sees no decoding or augmentation."""

    def __init__(self, n: int, size: tuple[int, int], num_classes: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, *size, generator=g)  # (n, 3, H, W)
        self.masks = torch.randint(0, num_classes, (n, *size), generator=g)  # (n, H, W)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "mask": self.masks[i], "index": i}


def _bare_loop(model: torch.nn.Module, data: _FixedBatches, batch_size: int, steps: int,
               mode: SpeedMode, lr: float) -> float:
    """Mean seconds per step of the plainest PyTorch loop: forward, cross-entropy, backward,
    AdamW, on one fixed batch."""
    model.train()
    if mode.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    images = data.images[:batch_size]  # (B, 3, H, W)
    masks = data.masks[:batch_size]  # (B, H, W)
    if mode.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    for _ in range(steps):
        with mode.autocast():
            out = model(images)
        loss = torch.nn.functional.cross_entropy(out.logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - t0) / steps


def training_speed(make_model: Callable[[], torch.nn.Module], batch_size: int,
                   size: tuple[int, int], num_classes: int, steps: int = 20,
                   warmup: int = 3) -> dict:
    """Training speed on the CPU: ms per step and images per second of ``fusionlab.train.train``
    in fp32 and in the automatic speed mode, next to a bare PyTorch loop (forward, loss,
    backward, AdamW step on one fixed batch) in the same mode.

    Each measurement builds a fresh model with ``make_model`` (seeded), trains ``warmup``
    steps untimed, then times ``steps`` steps; both report the mean time per step (the training
    loop's optimisation time over its steps, the bare loop's wall time over its steps).

    Returns:
        ``{"modes": {mode name: {"train_ms_per_step", "bare_ms_per_step", "images_per_s",
        "harness_overhead"}}, "batch_size", "size", "speedup"}``: the overhead is train / bare
        - 1, the speedup fp32 time / automatic mode time (training loop).

    Raises:
        ValueError: ``steps`` or ``batch_size`` below 1.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    data = _FixedBatches(batch_size * max(steps, warmup), size, num_classes)  # one epoch
    auto = choose_speed_mode(torch.device("cpu"))
    modes = {"fp32": SpeedMode("cpu", "fp32", False)}
    if auto != modes["fp32"]:
        modes[auto.name] = auto
    report = {}
    for name, mode in modes.items():
        cfg = dict(batch_size=batch_size, lr=1e-3, optimizer="adamw", device="cpu",
                   progress=False, precision=mode.precision, channels_last=mode.channels_last)
        seed_everything(0)
        model = make_model()
        train(model, data, None, TrainConfig(steps=warmup, **cfg))
        timed = train(model, data, None, TrainConfig(steps=steps, **cfg))
        train_s = timed.train_seconds / steps
        seed_everything(0)
        bare_model = make_model()
        _bare_loop(bare_model, data, batch_size, warmup, mode, 1e-3)
        bare_s = _bare_loop(bare_model, data, batch_size, steps, mode, 1e-3)
        report[name] = {"train_ms_per_step": 1000 * train_s, "bare_ms_per_step": 1000 * bare_s,
                        "images_per_s": batch_size / train_s,
                        "harness_overhead": train_s / bare_s - 1}
    fastest = report[auto.name] if auto.name in report else report["fp32"]
    return {"modes": report, "batch_size": batch_size, "size": list(size),
            "threads": torch.get_num_threads(),
            "speedup": report["fp32"]["train_ms_per_step"] / fastest["train_ms_per_step"]}
