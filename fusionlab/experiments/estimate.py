"""How long a chapter's live runs take on a GPU nobody here has run it on: an estimate from
the FLOPs the runs compute and the images their loader prepares, to be replaced by a
measurement.

A chapter declares what it trains live (``Chapter.live``, ``Chapter.live_share``). Its GPU
time is bounded below by two things: the arithmetic (the FLOPs of every training step and of
the final evaluation, at an assumed sustained throughput) and the data loader (CamVid's
decoding and augmentation on the CPU, measured on this machine per image and shared among the
runtime's cores). The estimate is the larger of the two; everything else in the chapter
(figures, inspections, chapter 6's CPU cost measurements) is left out and said to be.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fusionlab.experiments.ablations import CHAPTERS
from fusionlab.experiments.builders import BuildContext, build_model
from fusionlab.experiments.data import Data, load_data
from fusionlab.experiments.profiles import Profile, with_encoder
from fusionlab.experiments.spec import Chapter
from fusionlab.losses import SegmentationLoss
from fusionlab.notebook import markdown_table
from fusionlab.train import TrainConfig

ASSUMED_TFLOPS = 5.0
"""The sustained training throughput assumed for Colab's free GPU, an NVIDIA T4, in TFLOP/s
(10^12 FLOPs per second, 2 per multiply-add): under a tenth of its 65 TFLOP/s mixed-precision
peak, since small decoders, depthwise convolutions and batch norm keep it far from its peak."""

ASSUMED_CORES = 2
"""CPU cores of a Colab runtime that prepare the training images."""


def training_flops(model: torch.nn.Module, size: tuple[int, int], num_classes: int) -> float:
    """FLOPs of one training step per image: the forward pass, the loss the training loop uses
    (``SegmentationLoss.for_model``, auxiliary outputs included) and the backward pass,
    counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products;
    2 FLOPs per multiply-add) on a (2, 3, H, W) batch and halved (the count is linear in the
    batch; two images keep batch norm's one-pixel pooling branches defined), on a copy of
    the model: its gradients and batch-norm statistics are left as they were.

    Args:
        size: (H, W) in pixels.
        num_classes: K, for the random labels of the loss.
    """
    model = copy.deepcopy(model).train()  # the caller's gradients and BN statistics stay
    device = next(model.parameters()).device
    images = torch.randn(2, 3, *size, device=device)                    # (2, 3, H, W)
    masks = torch.randint(0, num_classes, (2, *size), device=device)    # (2, H, W)
    criterion = SegmentationLoss.for_model(model, TrainConfig().aux_weight)
    with FlopCounterMode(display=False) as counter:
        loss, _ = criterion(model(images), masks)
        loss.backward()
    return counter.get_total_flops() / 2


def loader_seconds(data: Data, images: int = 24) -> float:
    """Median seconds this machine's CPU takes to prepare one training image of ``data``
    (decoding, augmentation, normalisation), over ``images`` images read in turn.

    Raises:
        ValueError: ``images`` below 1.
    """
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    times = []
    for i in range(images):
        start = time.perf_counter()
        data.train[i % len(data.train)]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def chapter_estimate(chapter: Chapter, profile: Profile, data: Data, seconds_per_image: float,
                     tflops: float = ASSUMED_TFLOPS, cores: int = ASSUMED_CORES) -> dict:
    """The estimated GPU time of ``chapter``'s live runs in ``profile``.

    Each live model trains ``chapter.live_steps(profile)`` steps of ``profile.batch_size``
    images, then is evaluated once on the validation split (forward FLOPs only).

    Args:
        data: the profile's data (its sizes and the number of validation images).
        seconds_per_image: the loader's time per training image on one core
            (``loader_seconds``).
        tflops: the GPU's sustained throughput, TFLOP/s.
        cores: CPU cores that share the loading.

    Returns:
        ``{"steps", "models", "tflop", "compute_s", "loader_s", "seconds"}``: steps per model,
        the number of live models, the total work in TFLOP (10^12 FLOPs), the time of the
        arithmetic and of the loader, and their maximum, in seconds.

    Raises:
        ValueError: a non-positive ``tflops``, ``cores`` or ``seconds_per_image``.
    """
    if tflops <= 0 or cores < 1 or seconds_per_image <= 0:
        raise ValueError(f"tflops, cores and seconds_per_image must be positive, got {tflops}, "
                         f"{cores} and {seconds_per_image}")
    if chapter.imagenet:  # the ImageNet encoder's architecture: its weights change no count
        profile = with_encoder(profile, "mobilenet_v2")
    context = BuildContext(len(data.classes), profile, data.train)
    steps, images = chapter.live_steps(profile), chapter.live_steps(profile) * profile.batch_size
    flops = 0
    for variant in chapter.live.values():
        model = build_model(variant, context)
        flops += images * training_flops(model, profile.size, len(data.classes))
        model.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, *profile.size))
        flops += len(data.val) * counter.get_total_flops()
    compute = flops / (tflops * 1e12)
    loader = len(chapter.live) * images * seconds_per_image / cores
    return {"steps": steps, "models": len(chapter.live), "tflop": flops / 1e12,
            "compute_s": compute, "loader_s": loader, "seconds": max(compute, loader)}


def estimate_table(profile: Profile, tflops: float = ASSUMED_TFLOPS, cores: int = ASSUMED_CORES,
                   data: Data | None = None) -> str:
    """Every chapter's ``chapter_estimate`` in ``profile`` as a Markdown table, in minutes.

    Args:
        data: the profile's data; default ``load_data(profile)`` (CamVid, or the announced
            fallback, whose images load at another speed: the table says which it used).

    Raises:
        ValueError: see ``chapter_estimate``.
    """
    data = data or load_data(profile)
    per_image = loader_seconds(data)
    header = ["chapter", "title", f"live models x steps (batch {profile.batch_size})",
              "work (PFLOP)", f"arithmetic at {tflops:g} TFLOP/s (min)",
              f"loader on {cores} cores (min)", "estimate (min)"]
    rows = []
    for chapter in CHAPTERS:
        e = chapter_estimate(chapter, profile, data, per_image, tflops, cores)
        rows.append([chapter.number, chapter.title, f"{e['models']} x {e['steps']}",
                     f"{e['tflop'] / 1000:.1f}", f"{e['compute_s'] / 60:.0f}",
                     f"{e['loader_s'] / 60:.1f}", f"{e['seconds'] / 60:.0f}"])
    return markdown_table(header, rows) + (f"\n\nProfile {profile.name} at {profile.size[0]} x "
                              f"{profile.size[1]} pixels on {data.source}; the loader takes "
                              f"{1000 * per_image:.1f} ms per training image on one core here.")
