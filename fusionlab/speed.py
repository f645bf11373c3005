"""Where and how fast a model runs: the device, the autocast precision and the memory format.

On the CPU bfloat16 autocast only pays where the CPU computes it natively (AVX512-BF16 or AMX),
and channels-last only with oneDNN; on CUDA float16 autocast with gradient scaling. Losses and
metrics stay in float32 whatever the mode.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""The autocast precisions, highest first, with their names in prose (``"fp32"``: no
autocast)."""

PRECISIONS = ("auto", *PRECISION_NAMES)
"""The precisions a run may ask for: ``"auto"`` lets ``choose_speed_mode`` pick the fastest one
the device computes natively."""


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
