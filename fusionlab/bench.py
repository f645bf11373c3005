"""Cost of a model: parameters, FLOPs (PyTorch's flop counter) and forward latency."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


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
                    repeats: int = 10, warmup: int = 2) -> dict:
    """Forward-pass wall time in seconds over ``repeats`` runs after ``warmup`` runs.

    Returns:
        ``{"median_s", "min_s", "max_s", "repeats"}``; CUDA is synchronised around each run.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, 3, *size, device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.train(was_training)
    return {"median_s": float(np.median(times)), "min_s": min(times), "max_s": max(times),
            "repeats": repeats}
