"""Profiles: how much every experiment and chapter trains.

One switch, ``FUSIONLAB_PROFILE``, picks the profile: ``smoke`` (seconds, for CI and nbval),
``cpu`` (minutes per model on a 2-core machine) or ``gpu`` (Colab: higher resolution, longer
schedules, mixed precision). Without it: ``gpu`` when CUDA is available, else ``cpu``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from fusionlab.datasets.camvid import SPLIT_SIZES
from fusionlab.encoders import MobileNetV2Encoder, ResNetEncoder
from fusionlab.experiments.banner import fallback_banner
from fusionlab.train import TrainConfig
from fusionlab.weights import WeightsNotFoundError, find_weights


def is_pretrained(encoder: str) -> bool:
    """Whether the encoder named ``encoder`` (a key of ``ENCODERS``, e.g.
    ``"mobilenet_v2-imagenet"``) starts from ImageNet weights."""
    return encoder.endswith("-imagenet")


@dataclass(frozen=True)
class Profile:
    """How much an experiment trains.

    Attributes:
        name: ``smoke``, ``cpu`` or ``gpu``.
        size: training resolution (H, W) in pixels. Evaluation scores the labels at the
            dataset copy's stored resolution (the logits are upsampled to it).
        batch_size, steps, lr, optimizer: training schedule (see ``TrainConfig``).
        train_images, val_images: subset sizes (``None``: the whole split).
        blocks, widths: the ``ResNetEncoder`` layout.
        channels: decoder channels.
        num_workers: DataLoader workers.
        encoder: a key of ``ENCODERS``: ``"resnet"`` (the ``ResNetEncoder`` above, from
            scratch), ``"mobilenet_v2"`` (from scratch) or ``"mobilenet_v2-imagenet"``
            (torchvision's ImageNet weights, found by ``fusionlab.weights.find_weights``).
        frozen_bn: keep the encoder's batch norms at their pretrained statistics (a
            ``MobileNetV2Encoder`` option; ignored by ``ResNetEncoder``).
    """

    name: str
    size: tuple[int, int]
    batch_size: int
    steps: int
    lr: float
    optimizer: str
    train_images: int | None
    val_images: int | None
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    channels: int
    num_workers: int
    encoder: str = "resnet"
    frozen_bn: bool = False

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {tuple(ENCODERS)}, got {self.encoder!r}")

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from ImageNet weights."""
        return is_pretrained(self.encoder)

    @property
    def checks_only(self) -> bool:
        """Whether its runs only check that everything runs (``smoke``, a ``dry_run``): too
        short to learn, so no chapter asserts on what they reach."""
        return self.name == "smoke" or self.steps < DRY_RUN_STEPS

    def describe(self, output_stride: int | None = None) -> str:
        """What the profile trains, as a phrase for the book's text: "a ResNet-18-shaped
        encoder (stage widths 32, 64, 128, 256) from scratch on CamVid's 367 training images at
        120 × 160 pixels, for 1500 steps of batch 8, with a decoder width of 64", and the
        output stride when one is given."""
        if self.encoder != "resnet":
            encoder = f"the {ENCODERS[self.encoder]}"
        else:
            shape = ("ResNet-18-shaped" if self.blocks == (2, 2, 2, 2) else
                     f"ResNet-shaped ({', '.join(map(str, self.blocks))} blocks per stage)")
            encoder = (f"a {shape} encoder (stage widths {', '.join(map(str, self.widths))}) "
                       f"from scratch")
        images = self.train_images or SPLIT_SIZES["train"]
        stride = f" and output stride {output_stride}" if output_stride else ""
        return (f"{encoder} on CamVid's {images} training images at {self.size[0]} × "
                f"{self.size[1]} pixels, for {self.steps} steps of batch {self.batch_size}, "
                f"with a decoder width of {self.channels}{stride}")


ENCODERS = {
    "resnet": "ResNetEncoder of the profile's blocks and widths, from scratch",
    "mobilenet_v2": "MobileNetV2Encoder, from scratch",
    "mobilenet_v2-imagenet": "MobileNetV2Encoder with torchvision's ImageNet weights",
}
"""The encoders a profile can name, with one line each."""


PROFILES = {
    "smoke": Profile(name="smoke",
                     # data
                     size=(48, 64), train_images=16, val_images=8, num_workers=0,
                     # schedule
                     batch_size=4, steps=8, lr=2e-3, optimizer="adamw",
                     # model
                     blocks=(2, 2, 2, 2), widths=(16, 32, 64, 128), channels=32),
    "cpu": Profile(name="cpu",
                   size=(120, 160), train_images=None, val_images=None, num_workers=0,
                   batch_size=8, steps=1500, lr=2e-3, optimizer="adamw",
                   blocks=(2, 2, 2, 2), widths=(32, 64, 128, 256), channels=64),
    "gpu": Profile(name="gpu",
                   size=(360, 480), train_images=None, val_images=None, num_workers=4,
                   batch_size=16, steps=6000, lr=2e-3, optimizer="adamw",
                   blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), channels=128),
}
"""The three profiles, each field named: the data (training size, subsets, loader workers), the
schedule (batch, steps, learning rate, optimiser) and the model (encoder layout and decoder
width; the encoder itself defaults to the from-scratch ResNet). Settings of one paper that
depend on the profile stay in that paper's ablation module (e.g. GFF's ``OUTPUT_STRIDES``)."""


def get_profile(name: str | None = None) -> Profile:
    """The named profile, else ``$FUSIONLAB_PROFILE``, else ``gpu`` with CUDA and ``cpu``
    without; with ``FUSIONLAB_DRY_RUN=1``, its ``dry_run``.

    Raises:
        ValueError: an unknown profile name.
    """
    name = name or os.environ.get("FUSIONLAB_PROFILE") or (
        "gpu" if torch.cuda.is_available() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {name!r} "
                         "(check FUSIONLAB_PROFILE)")
    return dry_run(PROFILES[name]) if os.environ.get("FUSIONLAB_DRY_RUN") == "1" else (
        PROFILES[name])


def dry_run(profile: Profile) -> Profile:
    """``profile`` at its own sizes, widths, output strides and loader workers, for two steps
    of batch 2 on a handful of images: a chapter of the ``gpu`` profile runs through on a CPU
    in minutes and fails where the real run would (shapes at 360 x 480, workers)."""
    return dataclasses.replace(profile, steps=2, batch_size=2, train_images=4, val_images=2)


DRY_RUN_STEPS = 100
"""Below this many steps a profile only checks that everything runs (``Profile.checks_only``)."""


def build_encoder(profile: Profile, blocks: tuple[int, ...] | None = None,
                  output_stride: int = 32) -> ResNetEncoder | MobileNetV2Encoder:
    """The profile's encoder (``Profile.encoder``) at ``output_stride``.

    Args:
        blocks: overrides the ``ResNetEncoder``'s blocks per stage (ExFuse's layer
            rearrangement); only for ``"resnet"``.
        output_stride: 32, 16 or 8.

    Raises:
        ValueError: ``blocks`` with a MobileNetV2 encoder, a bad ``output_stride``.
        WeightsNotFoundError: ``"mobilenet_v2-imagenet"`` without the weights file (see
            ``fusionlab.weights.find_weights``).
    """
    if profile.encoder == "resnet":
        return ResNetEncoder(blocks=blocks or profile.blocks, widths=profile.widths,
                             output_stride=output_stride)
    if blocks is not None:
        raise ValueError(f"blocks={tuple(blocks)} rearranges a ResNetEncoder's stages; the "
                         f"{profile.encoder} encoder has MobileNetV2's fixed layout")
    if profile.pretrained:
        return MobileNetV2Encoder.pretrained(output_stride, profile.frozen_bn)
    return MobileNetV2Encoder(output_stride, profile.frozen_bn)


def with_encoder(profile: Profile, encoder: str | None) -> Profile:
    """``profile`` with another encoder (``None``: unchanged).

    Raises:
        ValueError: an unknown encoder.
    """
    return profile if encoder in (None, profile.encoder) else dataclasses.replace(
        profile, encoder=encoder)


def costs_profile(profile: Profile) -> Profile:
    """The profile a model's costs are measured at for ``profile`` (chapter 6's table and Pareto
    plots): the ``cpu`` profile's size and batch on the MobileNetV2 encoder, those of the
    reference runs the costs are set against, whatever encoder ``profile`` trains (a chapter
    that fell back to the from-scratch ResNet still sets the reference mIoU against the costs of
    the models that reached it; the weights change no cost, so none are loaded). ``smoke``
    measures at its own size and encoder. Under ``FUSIONLAB_DRY_RUN=1`` it is the ``cpu``
    profile's dry run, so a dry run measures what its real run would (at 120 x 160, not
    360 x 480, where bfloat16 on a CPU without native support takes minutes per model)."""
    return profile if profile.name == "smoke" else with_encoder(get_profile("cpu"),
                                                                "mobilenet_v2")


def imagenet_or_scratch(profile: Profile) -> tuple[Profile, str]:
    """``profile`` on the ImageNet MobileNetV2 when its weights can be found or downloaded
    (``fusionlab.weights.find_weights``), else unchanged, with a banner saying why.

    Returns:
        (the profile to train, a banner: empty when the ImageNet encoder is used).
    """
    try:
        find_weights("mobilenet_v2")
    except WeightsNotFoundError as err:
        return profile, fallback_banner(
            f"The ImageNet weights are not available: this run trains the {profile.encoder} "
            "encoder from scratch.\nIts numbers are NOT those of the pretrained encoder.",
            str(err))
    return with_encoder(profile, "mobilenet_v2-imagenet"), ""


def train_config(profile: Profile, seed: int = 0, **overrides) -> TrainConfig:
    """The profile's ``TrainConfig`` for one seed; keyword arguments override fields.

    Raises:
        TypeError: an override that is not a ``TrainConfig`` field.
    """
    cfg = TrainConfig(steps=profile.steps, batch_size=profile.batch_size, lr=profile.lr,
                      optimizer=profile.optimizer, num_workers=profile.num_workers, seed=seed)
    return dataclasses.replace(cfg, **overrides)
