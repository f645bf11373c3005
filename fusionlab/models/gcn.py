"""Global Convolutional Network with Boundary Refinement: the decoder ExFuse starts from.

Peng, Zhang, Yu, Luo, Sun, "Large Kernel Matters: Improve Semantic Segmentation by Global
Convolutional Network", CVPR 2017, Sec. 3 and Fig. 2. Every encoder stage is turned into a
class-score map by a large separable kernel (GCN block) and a residual refinement (BR block);
the score maps are fused top-down, each upsampled by a learned deconvolution and added to the
next lower one, then refined again.

In the book: chapter 2, "The semantic gap: ExFuse" (``book/chapters/02-exfuse.ipynb``); what it
trains and the paper's own numbers: experiment ``exfuse`` in
``fusionlab/experiments/ablations/exfuse.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.models.base import HeadFactory, SegmentationModel, identity_head


class GlobalConvBlock(nn.Module):
    """GCN block: a dense k x k receptive field from two separable branches.

    Peng et al., CVPR 2017, Sec. 3.1 and Fig. 2(b): a k x 1 then 1 x k convolution plus a
    1 x k then k x 1 convolution, summed; no normalisation and no non-linearity.

    Args:
        in_channels: C_in.
        out_channels: C_out (the number of classes in the paper).
        kernel_size: k, odd (15 in the paper on 512 x 512 crops).

    Shape:
        (N, C_in, H, W) -> (N, C_out, H, W).

    Raises:
        ValueError: an even ``kernel_size``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        k, p = kernel_size, kernel_size // 2
        self.left = nn.Sequential(nn.Conv2d(in_channels, out_channels, (k, 1), padding=(p, 0)),
                                  nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, p)))
        self.right = nn.Sequential(nn.Conv2d(in_channels, out_channels, (1, k), padding=(0, p)),
                                   nn.Conv2d(out_channels, out_channels, (k, 1), padding=(p, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)  # (N, C_out, H, W)


class BoundaryRefinement(nn.Module):
    """BR block: a residual 3x3-ReLU-3x3 branch, ``x + conv(relu(conv(x)))``.

    Peng et al., CVPR 2017, Sec. 3.2 and Fig. 2(c).

    Shape:
        (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.residual = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                      nn.ReLU(inplace=True),
                                      nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


def crop_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Crop a 2x-upsampled map to the size of the lower level (the FCN "crop" layer).

    A stage of an odd-sized map has ``ceil(H / 2)`` rows, so doubling it gives ``H`` or
    ``H + 1``; the extra bottom row / right column is dropped.

    Shape:
        x (N, C, H', W'), reference (..., H, W) with H <= H' <= H + 1 -> (N, C, H, W).

    Raises:
        ValueError: ``x`` is smaller than the reference or larger by more than one pixel.
    """
    (h, w), (hx, wx) = reference.shape[-2:], x.shape[-2:]
    if not (h <= hx <= h + 1 and w <= wx <= w + 1):
        raise ValueError(f"cannot crop an upsampled map of size {(hx, wx)} to {(h, w)}: "
                         "expected at most one extra row and column")
    return x[..., :h, :w]  # (N, C, H, W)


class Deconv2x(nn.ConvTranspose2d):
    """Learned 2x upsampling (4x4 transposed convolution, stride 2) started as bilinear.

    The GCN decoder upsamples with deconvolution (Peng et al., CVPR 2017, Fig. 2(a)); its
    weights start as per-channel bilinear interpolation, as in FCN (Long et al., CVPR 2015,
    Sec. 3.3), and are trained.

    Shape:
        (N, C, h, w), reference (..., H, W) with ``h = ceil(H / 2)`` -> (N, C, H, W).

    Raises:
        ValueError: a reference size the doubled map cannot be cropped to (see ``crop_to``).
    """

    def __init__(self, channels: int):
        super().__init__(channels, channels, 4, stride=2, padding=1, bias=False)
        # 1-D bilinear taps for a factor 2 with kernel 4: (0.25, 0.75, 0.75, 0.25).
        taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
        with torch.no_grad():
            self.weight.zero_()
            for c in range(channels):
                self.weight[c, c] = taps[:, None] * taps[None, :]

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return crop_to(super().forward(x), reference)  # (N, C, H, W)


class GCN(SegmentationModel):
    """The GCN segmentation network: GCN + BR per stage, fused top-down on class scores.

    Peng et al., CVPR 2017, Fig. 2(a):

        t_l = BR(GCN_l(x_l))                       for every stage l = 2..5
        s_5 = t_5,   s_l = BR(t_l + Deconv(s_{l+1}))   for l = 4, 3, 2

    The logits are ``head(s_2)``, bilinearly resized to the input. The paper predicts ``s_2``
    directly, the default ``identity_head``; another head, e.g. a DUpsampling head, is a
    constructor argument, not a subclass.

    Args:
        num_classes: K; every decoder map is a K-channel score map, as in the paper.
        encoder: a ``ResNetEncoder`` with output stride 32.
        kernel_size: k of the GCN blocks (odd).
        head: builds the prediction head from (K, K), as every model's ``head`` does; the head
            maps the final score map ``s_2`` (N, K, H/4, W/4) to (N, K, h, w) logits at any
            resolution. Default: the identity (the paper).

    Shape:
        images (N, 3, H, W) -> ``SegOutput`` logits (N, K, H, W), no auxiliary outputs.

    Raises:
        ValueError: an encoder whose stages are not at strides 4, 8, 16, 32; an even
            ``kernel_size``; bad images (see ``SegmentationModel``); a head whose output does
            not have K channels (at the forward pass).
        TypeError: a ``head`` that is not a factory (a module built already, say).

    Differences from the paper:
        - k = 7 by default instead of 15: our cpu-profile inputs are 120 x 160, so c5 is 4 x 5
          and k = 7 already covers it (the paper's 15 covers its 16 x 16 c5 on 512 x 512).
        - The paper ends with two more Deconv + BR steps up to full resolution; we stop at
          stride 4 and resize bilinearly, like every model in fusionlab.
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder, kernel_size: int = 7,
                 head: HeadFactory = identity_head):
        super().__init__(num_classes, encoder)
        if not callable(head) or isinstance(head, nn.Module):
            raise TypeError(f"head must build the head from (in_channels, num_classes), e.g. "
                            f"conv1x1_head or dupsampling_head(projection); got "
                            f"{type(head).__name__}")
        strides = tuple(encoder.strides[lv] for lv in LEVELS)
        if strides != (4, 8, 16, 32):
            raise ValueError(f"GCN needs an encoder with stages at strides (4, 8, 16, 32), "
                             f"got {strides}")
        k, chans = num_classes, encoder.out_channels
        self.kernel_size = kernel_size
        self.gcn = nn.ModuleDict({lv: GlobalConvBlock(chans[lv], k, kernel_size)
                                  for lv in LEVELS})
        self.refine = nn.ModuleDict({lv: BoundaryRefinement(k) for lv in LEVELS})
        self.refine_fused = nn.ModuleDict({lv: BoundaryRefinement(k) for lv in LEVELS[:-1]})
        self.up = nn.ModuleDict({lv: Deconv2x(k) for lv in LEVELS[:-1]})
        """``up[l]`` brings the score map of the level above ``l`` to the size of ``l``."""
        self.head = head(k, k)

    def stage_scores(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """t_l = BR(GCN_l(x_l)) for every stage: {"c2": (N, K, H/4, W/4), ...}."""
        return {lv: self.refine[lv](self.gcn[lv](features[lv])) for lv in LEVELS}

    def top_down(self, scores: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Fuse the stage scores top-down.

        Returns:
            s_2 (N, K, H/4, W/4) and the upsampled maps ``{"c4": Up(s_5), "c3": Up(s_4),
            "c2": Up(s_3)}`` (each at its level's size) for the caller to supervise or show.
        """
        s, upsampled = scores[LEVELS[-1]], {}
        for lv in reversed(LEVELS[:-1]):
            upsampled[lv] = self.up[lv](s, scores[lv])  # (N, K, H_l, W_l)
            s = self.refine_fused[lv](scores[lv] + upsampled[lv])  # (N, K, H_l, W_l)
        return s, upsampled

    def predict(self, score: torch.Tensor) -> torch.Tensor:
        """The logits from the final score map: ``head(score)``, checked to have K channels.

        Shape:
            (N, K, H/4, W/4) -> (N, K, h, w), h x w set by the head.

        Raises:
            ValueError: the head's output is not (N, K, h, w).
        """
        logits = self.head(score)  # (N, K, h, w)
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"the head must return (N, {self.num_classes}, h, w) logits, got "
                             f"{tuple(logits.shape)} from {type(self.head).__name__}")
        return logits

    def decode(self, features):
        s, _ = self.top_down(self.stage_scores(features))  # (N, K, H/4, W/4)
        return self.predict(s), {}
