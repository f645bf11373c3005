"""DUpsampling: a data-dependent upsampling fitted to the label space, and the decoder it allows.

Tian, He, Shen, Yan, "Decoders Matter for Semantic Segmentation: Data-Dependent Decoding Enables
Flexible Feature Aggregation", CVPR 2019 (arXiv:1903.02120).

- Label-space compression: the one-hot labels, cut into r x r patches and flattened
  to vectors v of length K r^2, live in a small subspace. With P (C~ x K r^2) and W
  (K r^2 x C~) minimising SUM ||v - W P v||^2 under an orthogonality constraint, the closed form
  is PCA: W holds the leading C~ principal directions and P = W^T (``fit_label_projection``,
  ``LabelProjection``, in ``fusionlab.models.label_space`` with the fit's cache and mIoU*).
- DUpsampling: the decoder predicts C~ channels at stride r; each pixel's
  vector f becomes W f (+ the mean patch), rearranged into an r x r patch of K class scores: a
  fixed 1x1 convolution, then a depth-to-space (``DUpsampling``).
- Adaptive-temperature softmax: softmax(z / T) with T learned
  (``AdaptiveTemperature``).
- Flexible aggregation: low-level features are downsampled to the last
  feature's resolution, fused there, and DUpsampling recovers the full resolution
  (``DUpsamplingNet``); its bilinear twin is the same decoder with a 1x1 head.
- mIoU*, the labels' own reconstruction scored as a prediction (Table 1), is an upper bound of
  what a head can reach (``miou_star``).

One flattening everywhere: ``pixel_unshuffle``'s order, channel ``c * r^2 + dy * r + dx``, so the
fit and ``pixel_shuffle`` in the upsampling are exact inverses on maps of any shape.

In the book: chapter 5, "Label-space compression: DUpsampling"
(``book/chapters/05-dupsampling.ipynb``); what it trains and the paper's own numbers: experiment
``dupsampling`` in ``fusionlab/experiments/ablations/dupsampling.py``.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import ConvBNReLU
from fusionlab.models.base import HeadFactory, SegmentationModel
from fusionlab.models.label_space import LabelProjection, dupsample

class DUpsampling(nn.Module):
    """Data-dependent upsampling: a 1x1 convolution with W plus the mean patch, then
    ``pixel_shuffle`` by r (``dupsample``).

    Tian et al., CVPR 2019, DUpsampling. W is fixed: a buffer (saved with the model, moved with
    it, never seen by an optimiser), unless ``learn_w``.

    Args:
        projection: the fitted ``LabelProjection`` (gives K, r, C~, W and the mean).
        learn_w: make W and the mean trainable parameters.
        w_init: ``"pca"`` (start from the projection) or ``"random"`` (PyTorch's default
            initialisation of a 1x1 convolution, W learned from scratch; needs ``learn_w``).

    Attributes:
        weight: W, (K r^2, C~). bias: the mean patch, (K r^2,). ratio, num_classes,
        num_components: r, K, C~.

    Shape:
        codes (N, C~, h, w) -> scores (N, K, h r, w r).

    Raises:
        ValueError: an unknown ``w_init``; ``"random"`` without ``learn_w``; codes that are not
            (N, C~, h, w).

    Differences from the paper:
        The paper fits W once and keeps it fixed; a trainable W (from PCA or from scratch) is
        offered for the ablation its reimplementations imply (their W trains with the network).
    """

    def __init__(self, projection: LabelProjection, learn_w: bool = False, w_init: str = "pca"):
        super().__init__()
        if w_init not in ("pca", "random"):
            raise ValueError(f"w_init must be 'pca' or 'random', got {w_init!r}")
        if w_init == "random" and not learn_w:
            raise ValueError("a random W must be learned: pass learn_w=True with "
                             "w_init='random'")
        self.ratio, self.num_classes = projection.ratio, projection.num_classes
        self.num_components = projection.num_components
        if w_init == "pca":
            weight, bias = projection.W.clone(), projection.mean.clone()
        else:
            conv = nn.Conv2d(self.num_components, projection.W.shape[0], 1)
            weight, bias = conv.weight.detach()[:, :, 0, 0], conv.bias.detach()
        if learn_w:
            self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.dim() != 4 or codes.shape[1] != self.num_components:
            raise ValueError(f"expected codes (N, {self.num_components}, h, w), got "
                             f"{tuple(codes.shape)}")
        return dupsample(codes, self.weight, self.bias, self.ratio)  # (N, K, h r, w r)


class AdaptiveTemperature(nn.Module):
    """Adaptive-temperature softmax's scaling: scores z become z / T, T learned.

    Tian et al., CVPR 2019, adaptive-temperature softmax (after Hinton et al.'s distillation
    temperature): the upsampled scores of a W fitted to one-hot patches lie near 0..1, so a plain
    softmax of them is flat and the cross-entropy stalls (Fig. 5); a learned T sharpens it.
    T = exp(log T) with log T the parameter, so T stays positive whatever the optimiser does.

    The module returns z / T; the cross-entropy of these logits is the cross-entropy of
    softmax(z / T), and their argmax is z's.

    Args:
        initial: T at initialisation (> 0; the paper does not state it).

    Attributes:
        temperature: the current T, a float (for logging).

    Shape:
        (N, K, H, W) -> (N, K, H, W).

    Raises:
        ValueError: ``initial`` not a finite number > 0.

    Differences from the paper:
        The paper says only that T is learned by back-propagation with no tuning (the reading
        notes: "自动学习, 无需调整"); it states neither the initial T nor the optimiser or
        learning rate T gets, and shows T's effect only as loss curves (Fig. 5: about 0.3
        after some 500 iterations with T, stalled near 2.2 without). Here T starts at
        ``initial`` and log T is trained with the rest of the model. With AdamW the update of
        log T is about the learning rate per step whatever the gradient's size (a little more
        while the gradient grows), so log T moves by about the sum of the learning rates at
        most, and T moves slowly: in chapter 5's live run in the cpu profile (450 steps, lr
        2e-3, poly schedule) that sum is 0.47 and exp(-0.47) = 0.62; T went from 1 to about
        0.6, about as fast as AdamW lets it (450 steps at a constant 2e-3 would allow
        exp(-0.9) = 0.41). The scores can still sharpen through the layer before W, which can
        scale its output.
    """

    def __init__(self, initial: float = 1.0):
        super().__init__()
        if isinstance(initial, bool) or not isinstance(initial, (int, float)) \
                or not math.isfinite(initial) or initial <= 0:
            raise ValueError(f"the initial temperature must be a finite number > 0, got "
                             f"{initial!r}")
        self.log_temperature = nn.Parameter(torch.tensor(math.log(initial)))

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.log_temperature.exp()


def dupsampling_head(projection: LabelProjection, learn_w: bool = False,
                     w_init: str = "pca") -> HeadFactory:
    """A prediction-head factory: a 1x1 convolution to C~ channels, then ``DUpsampling``.

    Tian et al., CVPR 2019, DUpsampling. Any model that takes a ``head`` (FPN, UNet, FCN,
    ``DUpsamplingNet``) can use it; r must be the stride of the features the head reads.

    Args:
        projection, learn_w, w_init: see ``DUpsampling``.

    Shape:
        the head: (N, C, h, w) -> (N, K, h r, w r).

    Raises:
        ValueError: (when the head is built) a K other than the projection's; see
            ``DUpsampling``.
    """
    def build(in_channels: int, num_classes: int) -> nn.Module:
        if num_classes != projection.num_classes:
            raise ValueError(f"the projection was fitted for {projection.num_classes} classes, "
                             f"the model predicts {num_classes}")
        return nn.Sequential(nn.Conv2d(in_channels, projection.num_components, 1),
                             DUpsampling(projection, learn_w, w_init))
    return build


class DUpsamplingNet(SegmentationModel):
    """The DUpsampling decoder: flexible aggregation at the output stride, then DUpsampling.

    Tian et al., CVPR 2019, flexible aggregation: each fused low-level feature is DOWNSAMPLED to
    the last feature's resolution (c5 at the output stride), passed through a 1x1 convolution,
    and concatenated with the last feature; two 3x3 convolutions fuse them; the head predicts
    from there. With the default head (a 1x1 convolution to C~, ``DUpsampling``) the decoder
    never works above the output stride; with ``head=conv1x1_head`` it is its bilinear twin
    (the same decoder, a 1x1 convolution to K, bilinear upsampling of the logits).

    With ``temperature`` the logits are z / T (``AdaptiveTemperature``): the training loss,
    cross-entropy on the logits, is the cross-entropy of the adaptive-temperature softmax;
    predictions (argmax) do not depend on T.

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder`` whose output stride is ``output_stride``.
        projection: the fitted ``LabelProjection`` (r = output stride) for the DUpsampling
            head; ``None`` with another ``head``.
        output_stride: the stride of c5 in pixels (16 or 32 in the paper); must be the
            encoder's.
        fuse: the low-level levels fused, a subset of c2, c3, c4 (``()``: none).
        learn_w, w_init: see ``DUpsampling``.
        temperature: initial T of the adaptive temperature, or ``None`` for a plain softmax.
        channels: width of the fusing 3x3 convolutions.
        low_channels: width of each fused level's 1x1 convolution (DeepLabv3+'s 48).
        head: another prediction head factory (e.g. ``conv1x1_head``: the bilinear twin).

    Attributes:
        temperature: the current T (a float), or ``None``.

    Shape:
        images (N, 3, H, W) -> ``SegOutput`` logits (N, K, H, W), no auxiliary outputs. The
        DUpsampling head predicts (N, K, ceil(H/r) r, ceil(W/r) r), cropped at the bottom and
        right (a bilinear resize would stretch the patch grid); smaller logits are upsampled
        bilinearly.

    Raises:
        ValueError: an encoder of another output stride; a projection of another r or K; a
            level outside c2..c4 or repeated; neither a projection nor a head, or a head
            together with a projection, ``learn_w`` or ``w_init``; a bad ``temperature``;
            images that are not float (N, 3, H, W).

    Differences from the paper:
        - The paper downsamples the low-level features bilinearly; we average (area) pooling,
          since bilinear sampling by a factor of 4 to 8 reads a sparse subset of the pixels.
        - The paper's encoder ends in ASPP (DeepLabv3); our last feature is c5 itself.
        - The paper's fused levels are conv1_3, b1u2c3 (c2) and b3u6c3 (c4) of ResNet-50.
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder,
                 projection: LabelProjection | None, output_stride: int = 16,
                 fuse: Iterable[str] = ("c2",), learn_w: bool = False, *, w_init: str = "pca",
                 temperature: float | None = 1.0, channels: int = 128, low_channels: int = 48,
                 head: HeadFactory | None = None):
        super().__init__(num_classes, encoder)
        if encoder.strides["c5"] != output_stride:
            raise ValueError(f"output_stride={output_stride} but the encoder's c5 has stride "
                             f"{encoder.strides['c5']}; build it with "
                             f"ResNetEncoder(output_stride={output_stride})")
        fuse = tuple(fuse)
        if any(lv not in LEVELS[:-1] for lv in fuse) or len(set(fuse)) != len(fuse):
            raise ValueError(f"fuse must be distinct levels among {LEVELS[:-1]}, got {fuse}")
        self.fuse = tuple(lv for lv in LEVELS if lv in fuse)
        if head is None:
            if projection is None:
                raise ValueError("the DUpsampling head needs a projection "
                                 "(fit_label_projection); or pass another head=")
            if projection.ratio != output_stride:
                raise ValueError(f"the projection upsamples by r={projection.ratio}, the "
                                 f"decoder runs at output stride {output_stride}")
            head = dupsampling_head(projection, learn_w, w_init)
        elif projection is not None or learn_w or w_init != "pca":
            raise ValueError("head= replaces the DUpsampling head: pass no projection, learn_w "
                             "or w_init with it")
        self.output_stride = output_stride
        self.laterals = nn.ModuleDict({lv: ConvBNReLU(encoder.out_channels[lv], low_channels, 1)
                                       for lv in self.fuse})
        fused = encoder.out_channels["c5"] + low_channels * len(self.fuse)
        self.aggregate = nn.Sequential(ConvBNReLU(fused, channels, 3),
                                       ConvBNReLU(channels, channels, 3))
        self.head = head(channels, num_classes)
        self.adaptive_temperature = (None if temperature is None
                                     else AdaptiveTemperature(temperature))

    @property
    def temperature(self) -> float | None:
        return None if self.adaptive_temperature is None else self.adaptive_temperature.temperature

    def aggregated(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Flexible aggregation: the fused levels pooled to c5's grid, concatenated with c5,
        fused by the two 3x3 convolutions: what the head reads.

        Shape:
            features {"c2": (N, C2, H/4, W/4), ..., "c5": (N, C5, h, w)} -> (N, C, h, w).
        """
        last = features["c5"]  # (N, C5, h, w)
        parts = [last] + [self.laterals[lv](F.adaptive_avg_pool2d(features[lv], last.shape[-2:]))
                          for lv in self.fuse]  # each (N, C_low, h, w)
        return self.aggregate(torch.cat(parts, dim=1))  # (N, C, h, w)

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """The code the decoder predicts for each cell of the output-stride grid: the head's
        1x1 convolution, what DUpsampling's W turns into label patches. It can be set against
        the labels' own code, ``LabelProjection.encode`` of the label map: the paper's first
        loss is the L2 distance between the two, which it sets aside for the cross-entropy of
        the upsampled scores (Tian et al., CVPR 2019, Sec. 3.1).

        Shape:
            images (N, 3, H, W) -> (N, C~, h, w), h and w c5's grid.

        Raises:
            ValueError: a model whose head is not DUpsampling (the bilinear twin has no
                code); images that are not float (N, 3, H, W).
        """
        if not (isinstance(self.head, nn.Sequential) and isinstance(self.head[-1], DUpsampling)):
            raise ValueError(f"codes needs the DUpsampling head, this model's head is "
                             f"{type(self.head).__name__}")
        return self.head[0](self.aggregated(self.features(images)))  # (N, C~, h, w)

    def decode(self, features):
        scores = self.head(self.aggregated(features))  # (N, K, h r, w r); (N, K, h, w): 1x1
        if self.adaptive_temperature is not None:
            scores = self.adaptive_temperature(scores)
        return scores, {}
