"""ExFuse: close the semantic gap between low- and high-level features before fusing them.

Zhang, Zhang, Peng, Xue, Sun, "ExFuse: Enhancing Feature Fusion for Semantic Segmentation",
ECCV 2018. Built on the GCN decoder (``fusionlab.models.gcn``). Two directions:

- more semantics in low-level features: layer rearrangement (LR, Sec. 3.1), semantic
  supervision (SS, Sec. 3.1), semantic embedding branch (SEB, Sec. 3.1, Fig. 4);
- more resolution in high-level features: explicit channel resolution embedding (ECRE,
  Sec. 3.2, Fig. 5) and densely adjacent prediction (DAP, Sec. 3.2, Fig. 6).

``ExFuse`` switches each module on or off, so the paper's cumulative ablation (Table 3) is one
loop over flags.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.bench import count_flops
from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import ConvBNReLU, upsample_like
from fusionlab.models.gcn import GCN, Deconv2x, crop_to


# -- layer rearrangement ----------------------------------------------------------------------
def rearranged_blocks(blocks: Sequence[int], moves: int) -> tuple[int, ...]:
    """Move ``moves`` residual blocks, one at a time, from late stages to early ones.

    Each move takes a block from the stage with the most blocks (ties: the highest stage; c2
    never gives, and every stage keeps at least one) and gives it to the stage below it with
    the fewest blocks (ties: the lowest). Same number of blocks; e.g. (2, 2, 2, 2) with 2 moves
    -> (3, 3, 1, 1).

    Raises:
        ValueError: ``moves`` < 0, or no block can move any more.
    """
    if moves < 0:
        raise ValueError(f"moves must be >= 0, got {moves}")
    counts = list(blocks)
    for _ in range(moves):
        donors = [i for i in range(1, len(counts)) if counts[i] > 1]
        if not donors:
            raise ValueError(f"cannot move another block out of {tuple(counts)} "
                             f"(after rearranging {tuple(blocks)})")
        donor = max(donors, key=lambda i: (counts[i], i))
        receiver = min(range(donor), key=lambda i: (counts[i], i))
        counts[donor] -= 1
        counts[receiver] += 1
    return tuple(counts)


def layer_rearrangement(encoder: ResNetEncoder, moves: int = 2, size: tuple[int, int] = (224, 224),
                        tolerance: float = 0.05) -> ResNetEncoder:
    """A freshly initialised encoder with more blocks in the early stages at equal compute.

    ExFuse, Sec. 3.1 ("Layer Rearrangement"): ResNeXt-101's {3, 4, 23, 3} blocks become
    {8, 8, 9, 8}, so res-2 and res-3 sit closer to the supervision. Here ``moves`` blocks move
    as in ``rearranged_blocks``; widths, block type and output stride are the given encoder's.
    The FLOPs of both layouts are counted by PyTorch's flop counter on a (1, 3, *size) input.

    Args:
        encoder: the layout to start from (its weights are not used).
        moves: blocks to move.
        size: input (H, W) in pixels for the FLOP count.
        tolerance: largest allowed relative difference in FLOPs.

    Returns:
        The rearranged ``ResNetEncoder`` (random weights).

    Raises:
        ValueError: the FLOPs differ by more than ``tolerance`` (names both counts), or see
            ``rearranged_blocks``.

    Differences from the paper:
        The paper also adjusts channel numbers to keep the complexity; with basic blocks whose
        width doubles as the resolution halves, every block costs about the same FLOPs, so
        moving blocks alone keeps the compute (checked here), but not the parameter count:
        late blocks hold far more weights than early ones.
    """
    new = ResNetEncoder(blocks=rearranged_blocks(encoder.blocks, moves), widths=encoder.widths,
                        output_stride=encoder.strides["c5"], in_channels=encoder.in_channels,
                        block=encoder.block, stem_channels=encoder.conv1.out_channels)
    before, after = count_flops(encoder, size), count_flops(new, size)
    if abs(after - before) > tolerance * before:
        raise ValueError(f"rearranged layout {new.blocks} costs {after:,} FLOPs against "
                         f"{before:,} for {encoder.blocks}: more than {tolerance:.0%} apart")
    return new


# -- semantic supervision ---------------------------------------------------------------------
class SemanticSupervisionHead(nn.Module):
    """An auxiliary segmentation head on one encoder stage (semantic supervision).

    ExFuse, Sec. 3.1 and Fig. 3: auxiliary supervision on the tail of each stage forces
    low-level features to carry semantics.

    Args:
        in_channels: C_l of the stage.
        num_classes: K.
        channels: width of the 3x3 convolution.

    Shape:
        (N, C_l, H, W) -> (N, K, H, W).

    Differences from the paper:
        The paper attaches classification heads (conv, pooling, fully connected) while
        pretraining the encoder on ImageNet and removes them before segmentation. We have no
        ImageNet pretraining, so the heads predict segmentation maps and are trained with the
        segmentation (deep-supervision loss); they stay in the model, which lets us look at
        each stage's own prediction.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, channels, 3)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x))  # (N, K, H, W)


# -- semantic embedding branch ----------------------------------------------------------------
class SemanticEmbeddingBranch(nn.Module):
    """SEB: x~_l = x_l * PROD over every higher level s of Up(Conv3x3(x_s)).

    ExFuse, Sec. 3.1, Eq. (1) and Fig. 4: each higher-level feature map is projected to the
    low level's channels by a 3x3 convolution, upsampled bilinearly and multiplied into the low
    level; with several higher levels, the product of all of them.

    Args:
        low_channels: C_l of the level being embedded into.
        high_channels: channels of every higher level, lowest first (e.g. (C3, C4, C5) for c2).

    Shape:
        low (N, C_l, H, W), highs [(N, C_s, h_s, w_s), ...] -> (N, C_l, H, W).

    Raises:
        ValueError: a different number of higher levels than ``high_channels``.
    """

    def __init__(self, low_channels: int, high_channels: Sequence[int]):
        super().__init__()
        if not high_channels:
            raise ValueError("SEB needs at least one higher level")
        self.convs = nn.ModuleList(nn.Conv2d(c, low_channels, 3, padding=1)
                                   for c in high_channels)

    def masks(self, low: torch.Tensor, highs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The multiplicative masks Up(Conv3x3(x_s)), one (N, C_l, H, W) map per higher level."""
        if len(highs) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} higher levels, got {len(highs)}")
        return [upsample_like(conv(h), low) for conv, h in zip(self.convs, highs)]  # (N, C_l, H, W)

    def forward(self, low: torch.Tensor, highs: Sequence[torch.Tensor]) -> torch.Tensor:
        out = low
        for mask in self.masks(low, highs):
            out = out * mask  # (N, C_l, H, W)
        return out


# -- explicit channel resolution embedding ----------------------------------------------------
class SubPixelUpsample(nn.Module):
    """Sub-pixel upsampling: a 3x3 convolution to C * r^2 channels, then pixel shuffle by r.

    Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network" (ESPCN), CVPR 2016, Sec. 2.2; used by ExFuse's
    ECRE (Sec. 3.2, Fig. 5). Channel ``c * r^2 + i * r + j`` becomes the sub-pixel (i, j) of
    channel c (PyTorch's ``pixel_shuffle`` order).

    Args:
        channels: C (in and out).
        scale: r.

    Shape:
        (N, C, h, w), reference (..., H, W) with H <= r*h <= H + 1 -> (N, C, H, W)
        (r*h, r*w before the crop).
    """

    def __init__(self, channels: int, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(channels, channels * scale * scale, 3, padding=1)

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        y = F.pixel_shuffle(self.conv(x), self.scale)  # (N, C, r*h, r*w)
        return crop_to(y, reference)  # (N, C, H, W)


ECRE_VARIANTS = {
    "ecre": ("subpixel", True),
    "subpixel": ("subpixel", False),
    "deconv+supervision": ("deconv", True),
}
"""ExFuse's Table 4: variant -> (upsampling of the top score map, supervised?). The baseline
(deconvolution, no supervision) is the plain ``GCN`` decoder."""


class ECRE(nn.Module):
    """Explicit channel resolution embedding: upsample the top score map by sub-pixel
    convolution, and supervise the upsampled map with an auxiliary loss.

    ExFuse, Sec. 3.2, Fig. 5 and Table 4: the supervision forces the top features to store
    their sub-pixel detail in their channels. Table 4 separates the two halves; ``variant``
    picks one of ``ECRE_VARIANTS``: ``"ecre"`` (sub-pixel + supervision), ``"subpixel"``
    (sub-pixel only) or ``"deconv+supervision"``.

    Args:
        channels: C of the score map (K in the GCN decoder).
        variant: the design, a key of ``ECRE_VARIANTS``.

    Attributes:
        supervised: whether the model should put the output in ``SegOutput.aux["ecre"]``.

    Shape:
        x (N, C, h, w), reference (..., H, W) with H <= 2h <= H + 1 -> (N, C, H, W).

    Raises:
        ValueError: an unknown ``variant``.
    """

    def __init__(self, channels: int, variant: str = "ecre"):
        super().__init__()
        if variant not in ECRE_VARIANTS:
            raise ValueError(f"ECRE variant must be one of {tuple(ECRE_VARIANTS)}, "
                             f"got {variant!r}")
        upsample, self.supervised = ECRE_VARIANTS[variant]
        self.variant = variant
        self.upsample = (SubPixelUpsample(channels, 2) if upsample == "subpixel"
                         else Deconv2x(channels))

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.upsample(x, reference)  # (N, C, H, W)


# -- densely adjacent prediction --------------------------------------------------------------
class DenselyAdjacentPrediction(nn.Module):
    """DAP: every position also predicts its k x k neighbours; the votes are averaged.

    ExFuse, Sec. 3.2, Eq. (2) and Fig. 6. The input holds one group of C class scores per
    offset (l, m), 0 <= l, m < k, group-major: channel ``(l*k + m)*C + c`` is class c of group
    (l, m). The output is

        out_c(i, j) = 1/k^2 * SUM_{l, m} r_c^{(l*k+m)}(i + l - k//2, j + m - k//2),

    i.e. the group (l, m) is read at the neighbour offset by (l - k//2, m - k//2).

    Border: positions outside the map contribute zero (zero padding), and the sum is still
    divided by k^2, exactly as the formula. A border pixel therefore has fewer votes and
    smaller scores, but since every class is scaled alike, its argmax is the argmax of the
    mean over the votes that exist.

    Args:
        kernel_size: k (odd; 3 in the paper).

    Shape:
        (N, C*k*k, H, W) -> (N, C, H, W).

    Raises:
        ValueError: an even ``kernel_size``; an input that is not 4-D or whose channels are not
            a multiple of k*k.
    """

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size

    def _padded_groups(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        if x.dim() != 4 or x.shape[1] % (k * k):
            raise ValueError(f"expected (N, C*{k * k}, H, W) scores, got {tuple(x.shape)}")
        n, _, h, w = x.shape
        groups = x.view(n, k * k, -1, h, w)  # (N, k*k, C, H, W)
        return F.pad(groups, (k // 2,) * 4)  # (N, k*k, C, H + 2*(k//2), W + 2*(k//2))

    def votes(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The k*k votes for position (i, j): ``votes[:, l, m]`` is r^{(l*k+m)} read at
        (i + l - k//2, j + m - k//2), zero outside the map; their mean is ``forward``'s
        output at (i, j).

        Shape:
            (N, C*k*k, H, W) -> (N, k, k, C).

        Raises:
            ValueError: (i, j) outside the map, or bad ``x`` (see the class).
        """
        k = self.kernel_size
        if not (0 <= i < x.shape[-2] and 0 <= j < x.shape[-1]):
            raise ValueError(f"position {(i, j)} is outside the {tuple(x.shape[-2:])} map")
        padded = self._padded_groups(x)  # padded row i + l is row i + l - k//2 of x
        rows = [torch.stack([padded[:, l * k + m, :, i + l, j + m] for m in range(k)], dim=1)
                for l in range(k)]  # k tensors (N, k, C)
        return torch.stack(rows, dim=1)  # (N, k, k, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        padded = self._padded_groups(x)
        h, w = x.shape[-2:]
        out = sum(padded[:, l * k + m, :, l:l + h, m:m + w]  # (N, C, H, W)
                  for l in range(k) for m in range(k))
        return out / (k * k)


# -- the model --------------------------------------------------------------------------------
class ExFuse(GCN):
    """The ExFuse network: the GCN decoder with each ExFuse module switchable.

    ExFuse, ECCV 2018, Fig. 2 and Table 3. With every flag off this is ``GCN``.

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder`` at output stride 32.
        kernel_size: k of the GCN blocks.
        lr: layer rearrangement: replace the encoder by ``layer_rearrangement(encoder,
            lr_moves)`` (freshly initialised).
        ss: semantic supervision: auxiliary heads on c2..c5, outputs ``aux["ss_c2"]`` ..
            ``aux["ss_c5"]``.
        seb: semantic embedding branch on c2, c3 and c4 (each with every higher level).
        ecre: ``True`` or ``"ecre"`` for sub-pixel upsampling of the top score map with an
            auxiliary loss on it (``aux["ecre"]``); ``"subpixel"`` or ``"deconv+supervision"``
            for Table 4's other designs; ``False``/``None`` for the plain deconvolution.
        dap: densely adjacent prediction: a 1x1 convolution widens the final score map to
            K*k^2 channels, then ``DenselyAdjacentPrediction(dap_kernel)``.
        lr_moves: blocks moved by the layer rearrangement.
        dap_kernel: k of DAP.

    Shape:
        images (N, 3, H, W) -> ``SegOutput``: logits (N, K, H, W), aux (each (N, K, H, W))
        named ``ss_c2``..``ss_c5`` and ``ecre`` when those modules are on.

    Raises:
        ValueError: an unknown ``ecre`` variant; see ``GCN``, ``layer_rearrangement``.

    Differences from the paper:
        - Semantic supervision at segmentation time, not during ImageNet pretraining (see
          ``SemanticSupervisionHead``).
        - Layer rearrangement on our small ResNet: (2, 2, 2, 2) -> (3, 3, 1, 1) by default,
          trained from scratch; the paper pretrains the rearranged ResNeXt on ImageNet.
        - The paper does not say which layer widens the final score map to K*k^2 channels for
          DAP; we add a 1x1 convolution after the last BR block.
        - See ``GCN`` for the decoder's own differences (k, final resolution).
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder, kernel_size: int = 7,
                 lr: bool = False, ss: bool = False, seb: bool = False,
                 ecre: bool | str | None = False, dap: bool = False, lr_moves: int = 2,
                 dap_kernel: int = 3):
        if ecre is True:
            ecre = "ecre"
        if ecre and ecre not in ECRE_VARIANTS:
            raise ValueError(f"ecre must be a bool or one of {tuple(ECRE_VARIANTS)}, "
                             f"got {ecre!r}")
        if lr:
            encoder = layer_rearrangement(encoder, lr_moves)
        super().__init__(num_classes, encoder, kernel_size)
        self.flags = {"lr": bool(lr), "ss": bool(ss), "seb": bool(seb), "ecre": ecre or None,
                      "dap": bool(dap)}
        chans = encoder.out_channels
        self.ss = nn.ModuleDict({lv: SemanticSupervisionHead(chans[lv], num_classes)
                                 for lv in LEVELS}) if ss else None
        self.seb = nn.ModuleDict({
            lv: SemanticEmbeddingBranch(chans[lv], [chans[s] for s in LEVELS[i + 1:]])
            for i, lv in enumerate(LEVELS[:-1])}) if seb else None
        self.ecre_supervised = bool(ecre) and ECRE_VARIANTS[ecre][1]
        if ecre:
            self.up[LEVELS[-2]] = ECRE(num_classes, ecre)
        self.dap = None
        if dap:
            self.dap = nn.Sequential(nn.Conv2d(num_classes, num_classes * dap_kernel ** 2, 1),
                                     DenselyAdjacentPrediction(dap_kernel))

    def embed(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Apply the SEB to c2..c4 (identity when ``seb`` is off); same shapes as the input."""
        if self.seb is None:
            return features
        embedded = dict(features)
        for i, lv in enumerate(LEVELS[:-1]):
            embedded[lv] = self.seb[lv](features[lv], [features[s] for s in LEVELS[i + 1:]])
        return embedded

    def decode(self, features):
        aux = {}
        if self.ss is not None:
            aux.update({f"ss_{lv}": head(features[lv]) for lv, head in self.ss.items()})
        logits, upsampled = self.top_down(self.stage_scores(self.embed(features)))
        if self.ecre_supervised:
            aux["ecre"] = upsampled[LEVELS[-2]]  # (N, K, H/16, W/16)
        if self.dap is not None:
            logits = self.dap(logits)  # (N, K, H/4, W/4)
        return logits, aux


__all__ = ["rearranged_blocks", "layer_rearrangement", "SemanticSupervisionHead",
           "SemanticEmbeddingBranch", "SubPixelUpsample", "ECRE_VARIANTS", "ECRE",
           "DenselyAdjacentPrediction", "ExFuse"]
