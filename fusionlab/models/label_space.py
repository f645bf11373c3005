"""The label space of DUpsampling: one-hot label patches, their PCA (the fixed W and P of the
upsampling), the fit's cache, and mIoU*, the bound a head reaches by reconstructing labels.

Tian, He, Shen, Yan, "Decoders Matter for Semantic Segmentation: Data-Dependent Decoding Enables
Flexible Feature Aggregation", CVPR 2019 (arXiv:1903.02120), Sec. 3.1-3.2 and Table 1. The
one-hot labels, cut into r x r patches and flattened to vectors v of length K r^2, live in a
small subspace: with P (C~ x K r^2) and W (K r^2 x C~) minimising SUM ||v - W P v||^2 under an
orthogonality constraint, the closed form is PCA: W holds the leading C~ principal directions
and P = W^T (``fit_label_projection``, ``LabelProjection``). The module that uses them,
``DUpsampling``, is in ``fusionlab.models.dupsampling``.

One flattening everywhere: ``pixel_unshuffle``'s order, channel ``c * r^2 + dy * r + dx``, so the
fit and ``pixel_shuffle`` in the upsampling are exact inverses on maps of any shape.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from fusionlab import IGNORE_INDEX
from fusionlab.io import atomic_write, cache_dir
from fusionlab.metrics import SegmentationMetrics

FIT_VERSION = "1"
"""Version of the fitting procedure, part of every cached projection's key."""

EXACT_SOLVER_MAX = 1024
"""Largest matrix (side, in rows) whose eigenvectors are computed by a full eigendecomposition;
larger ones use subspace iteration for the leading components only."""

SUBSPACE_TOL = 1e-6
"""Subspace iteration stops when the captured variance grows by less than this fraction."""

SUBSPACE_MAX_ITER = 100


# -- label maps ---------------------------------------------------------------------------------
def _base_dataset(dataset):
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _label_maps(dataset) -> np.ndarray:
    """The stored label maps of a dataset (never augmented), as an integer array (n, H, W).

    Accepts an ``ArraySegmentation`` (CamVid, SyntheticScenes), a ``Subset`` of one (nested
    too), or the label maps themselves as a numpy array or tensor.

    Raises:
        TypeError: another kind of dataset, or labels that are not integers.
        ValueError: label maps that are not a non-empty (n, H, W) array.
    """
    if isinstance(dataset, Subset):
        return _label_maps(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, torch.Tensor):
        labels = dataset.detach().cpu().numpy()
    elif isinstance(dataset, np.ndarray):
        labels = dataset
    elif isinstance(getattr(dataset, "masks", None), np.ndarray):
        labels = dataset.masks
    else:
        raise TypeError(f"expected a dataset holding its label maps as .masks (CamVid, "
                        f"SyntheticScenes), a Subset of one, or label maps (n, H, W); got "
                        f"{type(dataset).__name__}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"label maps must hold integers, got dtype {labels.dtype}")
    if labels.ndim != 3 or 0 in labels.shape:
        raise ValueError(f"expected label maps of shape (n, H, W), got {labels.shape}")
    return labels


def _num_classes(dataset, num_classes: int | None) -> int:
    if num_classes is None:
        num_classes = getattr(_base_dataset(dataset), "num_classes", None)
        if not num_classes:
            raise ValueError("the dataset does not say how many classes it has; pass "
                             "num_classes=")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return num_classes


def _check_label_values(labels: np.ndarray, num_classes: int, ignore_index: int) -> None:
    present = (np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
               if labels.dtype == np.uint8 else np.unique(labels))
    bad = [int(v) for v in present if v != ignore_index and not 0 <= v < num_classes]
    if bad:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} or be {ignore_index} "
                         f"(void), got {bad[:5]}")


def _check_ratio(ratio) -> int:
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
        raise ValueError(f"ratio must be an int >= 1 (pixels per patch side), got {ratio!r}")
    return ratio


def _one_hot(masks: torch.Tensor, num_classes: int, ratio: int, ignore_index: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot labels and the labelled-pixel mask, padded with void to multiples of ``ratio``.

    A void pixel (``ignore_index``) and a padded one belong to no class: all K entries 0.

    Shape:
        masks int (N, H, W) -> one-hot float32 (N, K, H', W'), labelled float32 (N, 1, H', W'),
        H' = ceil(H / r) * r, W' = ceil(W / r) * r.

    Raises:
        TypeError: masks that are not an integer tensor.
        ValueError: masks that are not (N, H, W), labels outside 0..K-1 and ``ignore_index``.
    """
    if not isinstance(masks, torch.Tensor) or masks.is_floating_point() or masks.is_complex() \
            or masks.dtype == torch.bool:
        raise TypeError(f"masks must be an integer tensor (N, H, W), got "
                        f"{getattr(masks, 'dtype', type(masks).__name__)}")
    if masks.dim() != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {tuple(masks.shape)}")
    labelled = masks != ignore_index  # (N, H, W)
    values = masks[labelled]
    if values.numel() and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} or be {ignore_index} (void), "
                         f"got {values.min().item()}..{values.max().item()}")
    h, w = masks.shape[-2:]
    codes = torch.where(labelled, masks, num_classes).long()  # (N, H, W), void -> K
    codes = F.pad(codes, (0, -w % ratio, 0, -h % ratio), value=num_classes)  # (N, H', W')
    onehot = torch.zeros(codes.shape[0], num_classes + 1, *codes.shape[1:])
    onehot.scatter_(1, codes[:, None], 1.0)  # (N, K + 1, H', W')
    return onehot[:, :num_classes], (codes < num_classes)[:, None].float()  # (N, K, H', W'), ...


def dupsample(codes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
              ratio: int) -> torch.Tensor:
    """The DUpsampling operation: ``W f + b`` at every pixel, then depth-to-space.

    Tian et al., CVPR 2019, DUpsampling: a 1x1 convolution with W (K r^2 x C~) and bias b (the
    mean patch), then ``pixel_shuffle``: channel ``c * r^2 + dy * r + dx`` becomes the sub-pixel
    (dy, dx) of class c, the inverse of the flattening ``fit_label_projection`` uses.

    Shape:
        codes (N, C~, h, w), weight (K r^2, C~), bias (K r^2,) -> scores (N, K, h r, w r).
    """
    scores = F.conv2d(codes, weight[:, :, None, None], bias)  # (N, K r^2, h, w)
    return F.pixel_shuffle(scores, ratio)  # (N, K, h r, w r)


# -- the projection ----------------------------------------------------------------------------
@dataclass(eq=False)
class LabelProjection:
    """A linear compression of r x r one-hot label patches: P = W^T, W and the mean patch.

    Tian et al., CVPR 2019, label-space compression: v (length K r^2, ``pixel_unshuffle``
    order) is compressed to ``P (v - mean)`` (C~ numbers) and reconstructed as
    ``W P (v - mean) + mean``. Made by ``fit_label_projection``.

    Attributes:
        num_classes: K.
        ratio: r, the patch side in pixels (the output stride the projection upsamples from).
        W: (K r^2, C~) float32, orthonormal columns: the principal directions, leading first.
        mean: (K r^2,) float32, the mean patch (zeros when not ``centred``).
        explained_variance: (C~,) float64, the variance of the fitting patches along each
            column of W (the eigenvalues of their covariance; of their second moments when not
            centred), in squared one-hot units per patch.
        total_variance: the sum over all K r^2 directions (the trace).
        centred: whether the patches were centred on their mean before the fit.
        ignore_index: the void label.
        num_patches: patches of the fit (duplicates counted).
        void_share: share of the fit's patch pixels that were void or padding.

    Shape:
        ``encode``: masks (N, H, W) -> codes (N, C~, ceil(H/r), ceil(W/r)); ``decode``: codes
        (N, C~, h, w) -> scores (N, K, h r, w r); ``reconstruct``: masks (N, H, W) -> scores
        (N, K, H, W).

    Raises:
        ValueError: (at construction) arrays whose shapes disagree with K, r and each other.
    """

    num_classes: int
    ratio: int
    W: torch.Tensor
    mean: torch.Tensor
    explained_variance: torch.Tensor
    total_variance: float
    centred: bool = True
    ignore_index: int = IGNORE_INDEX
    num_patches: int = 0
    void_share: float = 0.0

    def __post_init__(self):
        n = self.num_classes * self.ratio ** 2
        c = self.W.shape[-1] if self.W.dim() == 2 else -1
        if (self.W.dim() != 2 or self.W.shape[0] != n or c < 1 or tuple(self.mean.shape) != (n,)
                or tuple(self.explained_variance.shape) != (c,)):
            raise ValueError(f"for K={self.num_classes}, r={self.ratio} expected W ({n}, C~), "
                             f"mean ({n},) and explained_variance (C~,), got "
                             f"{tuple(self.W.shape)}, {tuple(self.mean.shape)} and "
                             f"{tuple(self.explained_variance.shape)}")

    @property
    def num_components(self) -> int:
        """C~, the number of channels a code has."""
        return self.W.shape[1]

    @property
    def P(self) -> torch.Tensor:
        """The compression matrix, W^T: (C~, K r^2)."""
        return self.W.T

    @property
    def residual_variance(self) -> float:
        """Mean squared reconstruction error of the fitting patches: the variance left out,
        total minus explained (the sum of the discarded eigenvalues)."""
        return self.total_variance - float(self.explained_variance.sum())

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """Share of the total variance along each column of W, (C~,)."""
        return self.explained_variance / self.total_variance

    def components(self) -> torch.Tensor:
        """The columns of W as label patches ("eigen-patches"): (C~, K, r, r)."""
        r = self.ratio
        return self.W.T.reshape(self.num_components, self.num_classes, r, r)

    def truncate(self, num_components: int) -> LabelProjection:
        """The same fit keeping its leading ``num_components`` directions (PCA directions are
        nested, so this equals a fit with fewer components).

        Raises:
            ValueError: ``num_components`` outside 1..C~.
        """
        if not 1 <= num_components <= self.num_components:
            raise ValueError(f"num_components must lie in 1..{self.num_components}, got "
                             f"{num_components}")
        return LabelProjection(self.num_classes, self.ratio, self.W[:, :num_components],
                               self.mean, self.explained_variance[:num_components],
                               self.total_variance, self.centred, self.ignore_index,
                               self.num_patches, self.void_share)

    @torch.no_grad()
    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """Compress label maps: ``P (v - mean)`` for each r x r patch.

        A void pixel contributes nothing (its entries are taken as the mean's, so they are 0
        after centring); sides that are not multiples of r are padded with void at the bottom
        and right, as a network's output grid covers them.

        Shape:
            masks int (N, H, W) -> codes float32 (N, C~, ceil(H/r), ceil(W/r)).

        Raises:
            TypeError, ValueError: masks that are not integer (N, H, W) labels in 0..K-1 or
                ``ignore_index``.
        """
        k, r = self.num_classes, self.ratio
        onehot, labelled = _one_hot(masks, k, r, self.ignore_index)  # (N, K, H', W'), (N, 1, ..)
        v = F.pixel_unshuffle(onehot, r)  # (N, K r^2, h, w)
        known = F.pixel_unshuffle(labelled, r).repeat(1, k, 1, 1)  # (N, K r^2, h, w)
        centred = v - known * self.mean[:, None, None]  # void entries 0
        return F.conv2d(centred, self.P[:, :, None, None])  # (N, C~, h, w)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruct class scores from codes: ``dupsample(codes, W, mean, r)``.

        Shape:
            codes (N, C~, h, w) -> scores (N, K, h r, w r).
        """
        return dupsample(codes, self.W, self.mean, self.ratio)

    def reconstruct(self, masks: torch.Tensor) -> torch.Tensor:
        """``decode(encode(masks))`` cropped to the masks' size; its argmax is the labels as a
        DUpsampling head with a perfect decoder would predict them.

        Shape:
            masks int (N, H, W) -> scores float32 (N, K, H, W).
        """
        h, w = masks.shape[-2:]
        return self.decode(self.encode(masks))[..., :h, :w]  # (N, K, H, W)

    def save(self, path: str | os.PathLike) -> None:
        """Write the projection to an ``.npz`` file, atomically."""
        with atomic_write(path) as f:
            np.savez(f, W=self.W.numpy(), mean=self.mean.numpy(),
                     explained_variance=self.explained_variance.numpy(),
                     scalars=np.array([self.num_classes, self.ratio, self.centred,
                                       self.ignore_index, self.num_patches], dtype=np.int64),
                     floats=np.array([self.total_variance, self.void_share]))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelProjection:
        """Read a projection written by ``save``.

        Raises:
            OSError, KeyError, ValueError: an unreadable or inconsistent file.
        """
        with np.load(path) as z:
            k, r, centred, ignore, patches = (int(v) for v in z["scalars"])
            total, void = (float(v) for v in z["floats"])
            return cls(k, r, torch.from_numpy(z["W"]), torch.from_numpy(z["mean"]),
                       torch.from_numpy(z["explained_variance"]), total, bool(centred), ignore,
                       patches, void)


# -- fitting ------------------------------------------------------------------------------------
def _unique_patches(labels: np.ndarray, ratio: int, num_classes: int, ignore_index: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Every r x r patch of the label maps on the grid from the top-left corner, void coded as
    K, with the maps padded with void to multiples of r; identical patches merged.

    Shape:
        labels (n, H, W) -> patches (U, r^2) in (dy, dx) order, counts (U,) summing to
        n ceil(H/r) ceil(W/r).
    """
    n, h, w = labels.shape
    r = ratio
    rows, cols = -(-h // r), -(-w // r)
    codes = np.full((n, rows * r, cols * r), num_classes,
                    np.uint8 if num_classes < 255 else np.int32)
    codes[:, :h, :w] = np.where(labels == ignore_index, num_classes, labels)
    patches = codes.reshape(n, rows, r, cols, r).transpose(0, 1, 3, 2, 4)  # (n, h, w, r, r)
    patches = np.ascontiguousarray(patches).reshape(-1, r * r)  # (M, r^2)
    keys = patches.view(np.dtype((np.void, patches.dtype.itemsize * r * r))).ravel()  # (M,)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return patches[first], counts  # (U, r^2), (U,)


def _centred_rows(patches: np.ndarray, counts: np.ndarray, num_classes: int, centred: bool,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The fitting matrix Y: one row per distinct patch, sqrt(count / M) (v - mean), void
    entries set to 0, so that Y^T Y is the covariance (second-moment matrix when not centred)
    of the M patches over their labelled pixels.

    The mean of entry (c, p) is the share of class c among the patches labelled at pixel p.

    Shape:
        patches (U, r^2) codes 0..K (K: void), counts (U,) -> Y (U, K r^2), mean (K r^2,)
        float32, and the void share of the patch pixels.
    """
    u, r2 = patches.shape
    k = num_classes
    weights = np.repeat(counts.astype(np.float64), r2)  # (U r^2,) one per patch pixel
    per_entry = np.bincount((patches.astype(np.int64) * r2 + np.arange(r2)).ravel(),
                            weights=weights, minlength=(k + 1) * r2).reshape(k + 1, r2)
    labelled_at = per_entry[:k].sum(0)  # (r^2,) patches labelled at each pixel
    mean = per_entry[:k] / np.maximum(labelled_at, 1)  # (K, r^2)
    if not centred:
        mean = np.zeros_like(mean)
    codes = torch.from_numpy(patches.astype(np.int64))  # (U, r^2)
    onehot = torch.zeros(u, k + 1, r2, dtype=dtype)
    onehot.scatter_(1, codes[:, None], 1.0)  # (U, K + 1, r^2)
    known = (codes < k).to(dtype)  # (U, r^2)
    mean_t = torch.from_numpy(mean).to(dtype)  # (K, r^2)
    rows = onehot[:, :k] - known[:, None, :] * mean_t  # (U, K, r^2)
    rows *= torch.from_numpy(np.sqrt(counts / counts.sum())).to(dtype)[:, None, None]
    void_share = 1.0 - labelled_at.sum() / (counts.sum() * r2)
    return rows.reshape(u, k * r2), mean_t.reshape(-1).float(), float(void_share)


@contextmanager
def _single_threaded():
    """Run the eigensolvers on one thread: on a busy 2-core machine MKL's threaded ``eigh`` of
    a 700 x 700 matrix took 20 s against 0.14 s on one thread, and subspace iteration at r = 16
    90 s against 3 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _leading_eigenpairs(a: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenvalues of a symmetric positive semi-definite matrix, with their
    eigenvectors.

    Up to ``EXACT_SOLVER_MAX`` rows (or when k is close to the size): a full eigendecomposition.
    Larger: subspace iteration with Rayleigh-Ritz on k + max(16, k/2) vectors (Halko,
    Martinsson, Tropp, "Finding structure with randomness", SIAM Review 2011, Alg. 4.4 and
    5.3), from a seeded random start, until the captured variance (sum of the k leading Ritz
    values) grows by less than ``SUBSPACE_TOL`` of itself. The Ritz values are then the exact
    variances along the returned orthonormal directions.

    Shape:
        a (d, d) -> values float64 (k,) descending, vectors float64 (d, k).
    """
    d = a.shape[0]
    q = min(d, k + max(16, k // 2))
    if d <= EXACT_SOLVER_MAX or q == d:
        values, vectors = torch.linalg.eigh(a.double())  # ascending
        return values.flip(0)[:k].clamp(min=0), vectors.flip(1)[:, :k]
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(d, q, generator=generator, dtype=a.dtype))[0]  # (d, q)
    previous = -math.inf
    for step in range(SUBSPACE_MAX_ITER):
        image = a @ basis  # (d, q)
        small = (basis.T @ image).double()  # (q, q)
        ritz, rotation = torch.linalg.eigh((small + small.T) / 2)  # ascending
        captured = float(ritz[-k:].sum())
        if captured - previous <= SUBSPACE_TOL * abs(captured) or step == SUBSPACE_MAX_ITER - 1:
            break
        previous = captured
        basis = torch.linalg.qr(image)[0]  # (d, q)
    return ritz.flip(0)[:k].clamp(min=0), basis.double() @ rotation.flip(1)[:, :k]  # (d, k)


def _principal_directions(rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k leading principal directions of the rows of Y and the variance along each.

    Works on the smaller of Y^T Y (K r^2 square, the covariance) and Y Y^T (one row per
    distinct patch, the Gram matrix); from the Gram matrix's eigenvectors u the directions are
    Y^T u / sqrt(lambda). Directions beyond the data's rank (variance 0) complete W to an
    orthonormal set.

    Shape:
        rows (U, N) -> variances float64 (k,), W float32 (N, k).
    """
    u, n = rows.shape
    if u < n:
        gram = rows @ rows.T  # (U, U)
        with _single_threaded():
            values, vectors = _leading_eigenpairs(gram, min(k, u))  # (k',), (U, k')
        keep = values > values[0] * 1e-10
        values = values[keep]
        w = (rows.T @ (vectors[:, keep] / values.sqrt()).to(rows.dtype)).double()  # (N, k'')
    else:
        covariance = rows.T @ rows  # (N, N)
        with _single_threaded():
            values, w = _leading_eigenpairs(covariance, k)  # (k,), (N, k)
    if w.shape[1] < k:
        extra = torch.randn(n, k - w.shape[1], generator=torch.Generator().manual_seed(0),
                            dtype=w.dtype)
        w = torch.cat([w, torch.linalg.qr(torch.cat([w, extra], 1))[0][:, w.shape[1]:]], 1)
        values = torch.cat([values, values.new_zeros(k - len(values))])
    return values, w.float()


def _cache_file(labels: np.ndarray, num_classes: int, ratio: int, num_components: int,
                centred: bool, ignore_index: int):
    digest = hashlib.sha1(f"{FIT_VERSION}:{num_classes}:{ratio}:{num_components}:{centred}:"
                          f"{ignore_index}:{labels.shape}:{labels.dtype}".encode())
    digest.update(np.ascontiguousarray(labels).data)
    kind = "centred" if centred else "uncentred"
    return (cache_dir() / "label-projections"
            / f"K{num_classes}-r{ratio}-c{num_components}-{kind}-{digest.hexdigest()[:16]}.npz")


def fit_label_projection(dataset, ratio: int, num_components: int, centred: bool = True,
                         ignore_index: int = IGNORE_INDEX, num_classes: int | None = None,
                         cache: bool = True) -> LabelProjection:
    """PCA of the r x r one-hot label patches of a dataset: the W of DUpsampling.

    Tian et al., CVPR 2019, label-space compression: minimise SUM ||v - W P v||^2 over the
    patches v with W^T W = I; the solution is P = W^T with W the C~ leading principal
    directions. Patches are cut on the grid from the top-left corner, flattened in
    ``pixel_unshuffle``'s order (c, dy, dx), so that ``pixel_shuffle`` inverts the flattening
    (``dupsample``).

    **Void.** A patch with void pixels is kept, and its void pixels are excluded: their K
    entries are set to the mean patch's, so after centring they are 0 and add nothing to any
    second moment; the mean of an entry is taken over the patches labelled at that pixel. No
    void pixel is ever treated as a class. Label maps whose sides are not multiples of r are
    padded with void at the bottom and right (the network's output grid covers those pixels;
    ``DUpsamplingNet`` crops them away).

    **Solver.** Identical patches are merged with their counts; the decomposition works on the
    smaller of the covariance (K r^2 square) and the Gram matrix of the distinct patches: a
    full eigendecomposition up to ``EXACT_SOLVER_MAX`` rows, else subspace iteration for the
    leading components (see ``_leading_eigenpairs``). On CamVid train at 120 x 160 this takes
    seconds for r = 8, 16 and 32.

    **Cache.** The result is stored atomically under ``cache_dir()/label-projections``, keyed
    by the label maps' bytes, their shape and dtype, every argument and ``FIT_VERSION``; a
    matching file is read instead of fitting again, an unreadable one is replaced.

    Args:
        dataset: an ``ArraySegmentation`` (CamVid, SyntheticScenes) or a ``Subset`` of one:
            its stored label maps are used (never the augmented samples); or label maps
            (n, H, W) as a numpy array or tensor.
        ratio: r, the patch side in pixels (the output stride to upsample from).
        num_components: C~, 1..K r^2.
        centred: subtract the mean patch before the PCA (the reconstruction adds it back).
        ignore_index: the void label.
        num_classes: K; by default the dataset's ``num_classes``.
        cache: read and write the cache.

    Returns:
        The ``LabelProjection``.

    Shape:
        label maps (n, H, W) -> W (K r^2, C~), mean (K r^2,).

    Raises:
        TypeError: an unsupported dataset or non-integer labels.
        ValueError: labels outside 0..K-1 and ``ignore_index`` (names them), a bad ``ratio``,
            ``num_components`` outside 1..K r^2, unknown ``num_classes``.

    Differences from the paper:
        The paper does not say whether the patches are centred (both are offered) nor how void
        is treated; it fits by PCA on PASCAL VOC's labels.
    """
    labels = _label_maps(dataset)
    k = _num_classes(dataset, num_classes)
    r = _check_ratio(ratio)
    if isinstance(num_components, bool) or not isinstance(num_components, int) \
            or not 1 <= num_components <= k * r * r:
        raise ValueError(f"num_components must be an int in 1..K r^2 = {k * r * r}, got "
                         f"{num_components!r}")
    _check_label_values(labels, k, ignore_index)
    path = _cache_file(labels, k, r, num_components, centred, ignore_index)
    if cache and path.is_file():
        try:
            return LabelProjection.load(path)
        except (OSError, KeyError, ValueError):  # unreadable: fitted again and replaced below
            pass
    patches, counts = _unique_patches(labels, r, k, ignore_index)  # (U, r^2), (U,)
    u, n = len(patches), k * r * r
    dtype = torch.float64 if u * n * min(u, n) <= 2e10 else torch.float32
    rows, mean, void_share = _centred_rows(patches, counts, k, centred, dtype)  # (U, N), (N,)
    variances, w = _principal_directions(rows, num_components)  # (C~,), (N, C~)
    total = float(rows.square().sum(dtype=torch.float64))
    projection = LabelProjection(k, r, w, mean, variances, total, centred, ignore_index,
                                 int(counts.sum()), void_share)
    if cache:
        projection.save(path)
    return projection


# -- upper bounds ---------------------------------------------------------------------------------
@torch.no_grad()
def bilinear_reconstruction(masks: torch.Tensor, num_classes: int, ratio: int,
                            ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Labels through a bilinear head with a perfect decoder: each r x r cell's class shares
    (average pooling of the one-hot labels over its labelled pixels), upsampled bilinearly.

    The comparison for ``LabelProjection.reconstruct`` (Tian et al., CVPR 2019, Table 1, mIoU*
    of bilinear). Sides that are not multiples of r are padded with void and cropped back;
    a cell without labelled pixels scores 0 for every class.

    Shape:
        masks int (N, H, W) -> scores float32 (N, K, H, W).

    Raises:
        TypeError, ValueError: masks that are not integer (N, H, W) labels in 0..K-1 or
            ``ignore_index``; a bad ``ratio``.
    """
    r = _check_ratio(ratio)
    onehot, labelled = _one_hot(masks, num_classes, r, ignore_index)  # (N, K, H', W'), ...
    shares = F.avg_pool2d(onehot, r) / F.avg_pool2d(labelled, r).clamp(min=1e-12)  # (N, K, h, w)
    up = F.interpolate(shares, scale_factor=r, mode="bilinear",
                       align_corners=False)  # (N, K, H', W')
    return up[..., :masks.shape[-2], :masks.shape[-1]]  # (N, K, H, W)


def miou_star(dataset, projection: LabelProjection | None = None, *, ratio: int | None = None,
              num_classes: int | None = None, ignore_index: int = IGNORE_INDEX,
              batch_size: int = 32) -> dict:
    """mIoU*: the labels compressed and reconstructed, scored against themselves.

    Tian et al., CVPR 2019, Table 1: the upper bound of a head when the decoder predicts the
    compressed labels perfectly. With ``projection``: ``LabelProjection.reconstruct`` (the
    DUpsampling head); with ``ratio``: ``bilinear_reconstruction`` (average pooling, then
    bilinear upsampling). Scored by ``fusionlab.metrics.SegmentationMetrics`` over the whole
    dataset (void pixels ignored), at the label maps' stored resolution.

    Args:
        dataset: as for ``fit_label_projection``.
        projection: a fitted projection (its K and ignore index are used), or ``None``.
        ratio: r for the bilinear reconstruction (only without ``projection``).
        num_classes: K for the bilinear reconstruction; by default the dataset's.
        ignore_index: the void label for the bilinear reconstruction.
        batch_size: label maps reconstructed at once.

    Returns:
        ``SegmentationMetrics.compute()``: ``"miou"``, ``"iou"``, ``"boundary_f"``, ...

    Raises:
        ValueError: neither or both of ``projection`` and ``ratio``; the errors of the
            reconstruction.
    """
    if (projection is None) == (ratio is None):
        raise ValueError("give exactly one of projection= (DUpsampling) and ratio= (average "
                         "pooling + bilinear)")
    labels = _label_maps(dataset)
    if projection is not None:
        k, ignore_index = projection.num_classes, projection.ignore_index
    else:
        k = _num_classes(dataset, num_classes)
    metrics = SegmentationMetrics(k, ignore_index)
    for start in range(0, len(labels), batch_size):
        masks = torch.from_numpy(labels[start:start + batch_size].astype(np.int64))  # (B, H, W)
        scores = (projection.reconstruct(masks) if projection is not None
                  else bilinear_reconstruction(masks, k, ratio, ignore_index))  # (B, K, H, W)
        metrics.update(scores.argmax(1), masks)
    return metrics.compute()


def miou_star_sweep(dataset, fits: dict[tuple[int, bool], LabelProjection],
                    components: Sequence[int]) -> dict[tuple, float]:
    """mIoU* (``miou_star``) of several fitted projections, each truncated to several code
    lengths, and of the bilinear reconstruction at each of their ratios: the whole comparison
    of chapter 5 (Tian et al., CVPR 2019, Table 1) in one call.

    Args:
        dataset: as for ``fit_label_projection``.
        fits: ``(r, centred)`` -> a projection fitted at ratio r, centred or not
            (``fit_label_projection``), with at least ``max(components)`` components.
        components: the code lengths C~ to truncate each fit to.

    Returns:
        ``(centred, r, C~)`` -> mIoU* through that projection, and ``("bilinear", r)`` ->
        mIoU* through pooling and bilinear upsampling, as fractions.

    Raises:
        ValueError: a code length above a fit's components (``LabelProjection.truncate``);
            the errors of ``miou_star``.
    """
    star = {}
    for (r, centred), fit in fits.items():
        for c in components:
            star[centred, r, c] = miou_star(dataset, fit.truncate(c))["miou"]
    for r in sorted({r for r, _ in fits}):
        star["bilinear", r] = miou_star(dataset, ratio=r)["miou"]
    return star


# -- modules --------------------------------------------------------------------------------------
