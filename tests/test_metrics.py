"""Metrics: the confusion matrix and mIoU over a whole dataset, the per-class boundary
F-score, and clear errors on bad predictions."""

import math

import numpy as np
import pytest
import torch

from fusionlab import IGNORE_INDEX
from fusionlab.metrics import SegmentationMetrics


def test_confusion_matrix_by_hand():
    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 0, 2]]])
    m = SegmentationMetrics(4)
    m.update(pred, target)
    # rows: target, columns: prediction; the ignored pixel is dropped
    assert m.confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    r = m.compute()
    # IoU0 = 1/(2+2-1) = 1/3, IoU1 = 2/(2+3-2) = 2/3, IoU2 = 0/(1+0) = 0, class 3 absent: NaN
    assert r["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(r["iou"][3])
    assert r["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert r["pixel_accuracy"] == pytest.approx(3 / 5)


def test_dataset_level_not_batch_mean():
    """Two batches: the IoU comes from the summed confusion matrix, not the mean of IoUs."""
    m = SegmentationMetrics(2)
    m.update(torch.tensor([[[0, 0, 0, 0]]]), torch.tensor([[[0, 0, 0, 1]]]))
    m.update(torch.tensor([[[1]]]), torch.tensor([[[1]]]))
    # over the dataset: class 0 has TP 3, FP 1 -> 3/4; class 1 has TP 1, FN 1 -> 1/2.
    # per batch: mIoU (3/4 + 0) / 2 = 3/8, then 1 (class 0 absent): their mean is 11/16.
    r = m.compute()
    assert r["iou"] == pytest.approx([3 / 4, 1 / 2])
    batch_means = np.mean([np.nanmean([3 / 4, 0.0]), np.nanmean([np.nan, 1.0])])
    assert r["miou"] == pytest.approx(5 / 8) and r["miou"] != pytest.approx(batch_means)


def test_perfect_and_all_wrong_predictions():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 16, 16))
    perfect = SegmentationMetrics(3)
    perfect.update(target.clone(), target)
    r = perfect.compute()
    assert r["miou"] == 1 and r["pixel_accuracy"] == 1 and r["boundary_f"] == 1
    wrong = SegmentationMetrics(3)
    wrong.update((target + 1) % 3, target)
    r = wrong.compute()
    assert r["miou"] == 0 and r["pixel_accuracy"] == 0


def test_scores_are_argmaxed():
    m = SegmentationMetrics(2)
    m.update(torch.tensor([[[[0.9]], [[0.1]]]]).permute(0, 1, 2, 3), torch.tensor([[[0]]]))
    assert m.confusion.tolist() == [[1, 0], [0, 0]]


def test_boundary_f_with_tolerance():
    """Per class: the boundary of class 0 is column 4 (target) and 6 (prediction), that of
    class 1 column 5 and 7: every predicted boundary pixel is exactly 2 px from the target's."""
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[:, :, 5:] = 1
    shifted = torch.zeros_like(target)
    shifted[:, :, 7:] = 1
    diagonal = math.hypot(10, 10)
    results = {}
    for pixels in (1.9, 2.0, 2.1):
        m = SegmentationMetrics(2, boundary_tolerance=pixels / diagonal)
        m.update(shifted, target)
        results[pixels] = m.compute()
    assert results[1.9]["boundary_f"] == 0 and results[1.9]["boundary_precision"] == 0
    for pixels in (2.0, 2.1):
        r = results[pixels]
        assert r["boundary_f"] == r["boundary_precision"] == r["boundary_recall"] == 1
        assert r["boundary_f_per_class"] == [1, 1]


def _blocks(rng, n, size, k, ignore_share=0.08):
    """Blocky random label maps (cells of 2-4 pixels) with some ignored pixels."""
    h, w = size
    maps = []
    for _ in range(n):
        cell = int(rng.integers(2, 5))
        m = rng.integers(0, k, (h // cell + 1, w // cell + 1)).repeat(cell, 0).repeat(cell, 1)
        m = m[:h, :w]
        m[rng.random((h, w)) < ignore_share] = 255
        maps.append(m)
    return np.stack(maps)


def _brute_boundary_f(pred, target, k, tolerance, ignore=255):
    """Per-class boundary F by definition: pixel loops and all pairwise distances."""
    per_image, per_class = [], [[] for _ in range(k)]
    precisions, recalls = [], []
    for p, t in zip(pred, target):
        h, w = t.shape
        theta = tolerance * math.sqrt(h * h + w * w)
        p = np.where(t == ignore, ignore, p)

        def boundary(lab, c):
            points = []
            for y in range(h):
                for x in range(w):
                    if lab[y, x] != c:
                        continue
                    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                        qy, qx = y + dy, x + dx
                        if 0 <= qy < h and 0 <= qx < w and lab[qy, qx] not in (c, ignore):
                            points.append((y, x))
                            break
            return np.array(points, dtype=float).reshape(-1, 2)

        def matched(a, b):
            if not len(a) or not len(b):
                return 0
            d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
            return int((d.min(1) <= theta + 1e-9).sum())

        fs, ps, rs = [], [], []
        for c in range(k):
            if not ((t == c).any() or (p == c).any()):
                continue
            bp, bt = boundary(p, c), boundary(t, c)
            if len(bp) == 0 and len(bt) == 0:
                precision = recall = 1.0
            elif len(bp) == 0:
                precision, recall = 1.0, 0.0
            elif len(bt) == 0:
                precision, recall = 0.0, 1.0
            else:
                precision, recall = matched(bp, bt) / len(bp), matched(bt, bp) / len(bt)
            f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            fs.append(f), ps.append(precision), rs.append(recall)
            per_class[c].append(f)
        if fs:
            per_image.append(np.mean(fs))
            precisions.append(np.mean(ps))
            recalls.append(np.mean(rs))
    return (np.mean(per_image), np.mean(precisions), np.mean(recalls),
            [np.mean(v) if v else math.nan for v in per_class])


@pytest.mark.parametrize("tolerance", [0.0075, 0.1, 0.2])
def test_boundary_f_against_brute_force(tolerance):
    rng = np.random.default_rng(3)
    k = 4
    target = _blocks(rng, 5, (11, 14), k)
    pred = _blocks(rng, 5, (11, 14), k, ignore_share=0)
    pred[:2] = np.where(rng.random((2, 11, 14)) < 0.85, np.where(target[:2] == 255, 0,
                                                                 target[:2]), pred[:2])
    m = SegmentationMetrics(k, boundary_tolerance=tolerance)
    m.update(torch.from_numpy(pred[:3]), torch.from_numpy(target[:3]))
    m.update(torch.from_numpy(pred[3:]), torch.from_numpy(target[3:]))
    f, precision, recall, per_class = _brute_boundary_f(pred, target, k, tolerance)
    r = m.compute()
    assert r["boundary_f"] == pytest.approx(f)
    assert r["boundary_precision"] == pytest.approx(precision)
    assert r["boundary_recall"] == pytest.approx(recall)
    assert r["boundary_f_per_class"] == pytest.approx(per_class, nan_ok=True)
    assert r["boundary_images"] == 5 and 0 < f < 1


def test_swapped_classes_are_caught_by_the_per_class_boundary_f():
    """A square of class 1 and one of class 2 on background 0, not touching; the prediction
    swaps them. A class-agnostic boundary measure sees identical boundaries and gives 1."""
    target = torch.zeros(1, 40, 60, dtype=torch.long)
    target[:, 5:20, 5:20] = 1
    target[:, 15:35, 35:55] = 2
    swapped = target.clone()
    swapped[target == 1], swapped[target == 2] = 2, 1
    m = SegmentationMetrics(3)
    m.update(swapped, target)
    r = m.compute()
    assert r["iou"][1] == r["iou"][2] == 0
    assert r["boundary_f_per_class"] == [1.0, 0.0, 0.0]
    assert r["boundary_f"] == pytest.approx(1 / 3)


def test_boundary_f_empty_sets_follow_the_davis_rules():
    uniform = torch.zeros(1, 8, 8, dtype=torch.long)
    square = uniform.clone()
    square[:, 2:5, 2:5] = 1
    cases = {"both empty": (uniform, uniform, 1.0, 1.0, 1.0),
             "prediction empty": (uniform, square, 0.0, 1.0, 0.0),
             "target empty": (square, uniform, 0.0, 0.0, 1.0)}
    for name, (pred, target, f, precision, recall) in cases.items():
        m = SegmentationMetrics(2)
        m.update(pred, target)
        r = m.compute()
        assert (r["boundary_f"], r["boundary_precision"], r["boundary_recall"]) == (
            f, precision, recall), name
    # an image without labelled pixels is skipped; with no image scored the value is NaN
    m = SegmentationMetrics(2)
    m.update(uniform, torch.full((1, 8, 8), 255))
    assert math.isnan(m.compute()["boundary_f"]) and m.compute()["boundary_images"] == 0
    m.update(uniform, uniform)
    assert m.compute()["boundary_f"] == 1 and m.compute()["boundary_images"] == 1


def test_boundary_f_ignores_void_pixels():
    """A wrong prediction inside the void region changes nothing, nor does the void border."""
    target = torch.zeros(1, 12, 12, dtype=torch.long)
    target[:, :, 6:] = 1
    target[:, 3:7, 2:5] = 255
    pred = torch.where(target == 255, torch.ones_like(target), target)
    m = SegmentationMetrics(2, boundary_tolerance=0)
    m.update(pred, target)
    assert m.compute()["boundary_f"] == 1


def test_metric_errors():
    m = SegmentationMetrics(3)
    with pytest.raises(ValueError, match="0..2"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 5))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))


@pytest.mark.parametrize("value", [3, 7, -1])
def test_predicted_labels_outside_the_classes_are_refused(value):
    m = SegmentationMetrics(3)
    pred = torch.tensor([[[0, 1], [2, value]]])
    with pytest.raises(ValueError, match=rf"0\.\.2, got {value}"):
        m.update(pred, torch.zeros(1, 2, 2, dtype=torch.long))
    assert m.confusion.sum() == 0 and m.boundary_images == 0


def test_float_labels_are_refused_but_float_scores_are_argmaxed():
    m = SegmentationMetrics(3)
    with pytest.raises(TypeError, match=r"float32.*argmax"):
        m.update(torch.tensor([[[0.4, 1.9]]]), torch.tensor([[[0, 1]]]))
    with pytest.raises(TypeError, match="float32"):
        m.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(1, 2, 1, 2\)"):
        m.update(torch.randn(1, 2, 1, 2), torch.tensor([[[0, 1]]]))
    scores = torch.tensor([[[[0.1, 0.0]], [[0.7, 0.1]], [[0.2, 0.9]]]])  # (1, 3, 1, 2)
    m.update(scores, torch.tensor([[[1, 2]]]))
    assert m.confusion.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_class_means_average_each_map_over_each_classs_labelled_pixels():
    from fusionlab.metrics import ClassMeans
    labels = torch.tensor([[[0, 0, 1], [1, IGNORE_INDEX, 2]]])             # (1, 2, 3)
    maps = torch.tensor([[[[1., 3., 5.], [7., 100., 2.]],                  # (1, 2, 2, 3)
                          [[0., 0., 1.], [1., 100., 0.]]]])
    means = ClassMeans(4)
    means.update(maps, labels)
    means.update(maps[:, :, :1], labels[:, :1])                            # class 0 again, 1 again
    expected = np.array([[(1 + 3 + 1 + 3) / 4, (5 + 7 + 5) / 3, 2, np.nan],
                         [0, (1 + 1 + 1) / 3, 0, np.nan]])
    assert np.allclose(means.compute(), expected, equal_nan=True)      # void (100) never counts
    assert means.counts.tolist() == [4, 3, 1, 0]
    assert np.allclose(means.overall(), [(1 + 3 + 5 + 7 + 2 + 1 + 3 + 5) / 8, 3 / 8])
    single = ClassMeans(4)
    single.update(maps[:, 0], labels)                                      # (N, H, W): R = 1
    assert single.compute().shape == (1, 4)


def test_class_means_over_a_dataset_batch_the_items_and_take_the_nearest_label():
    from fusionlab.evaluation import class_means
    from fusionlab.metrics import ClassMeans
    generator = torch.Generator().manual_seed(0)
    items = [{"image": torch.rand(3, 8, 12, generator=generator),
              "mask": torch.randint(0, 3, (8, 12), generator=generator)} for _ in range(5)]
    items[1]["mask"][:2] = IGNORE_INDEX

    def brightness(images):                                  # (n, 3, 8, 12) -> (n, 2, 8, 12)
        return torch.stack([images.mean(1), images[:, 0]], 1)

    expected = ClassMeans(3)
    for item in items[:4]:
        expected.update(brightness(item["image"][None]), item["mask"][None])
    means = class_means(brightness, items, 3, count=4, batch_size=3)
    assert np.allclose(means.compute(), expected.compute())
    assert means.counts.tolist() == expected.counts.tolist()

    def pooled(images):                                      # (n, 1, 4, 6): every other pixel
        return images[:, :1, ::2, ::2]

    coarse = ClassMeans(3)
    for item in items:
        coarse.update(pooled(item["image"][None]), item["mask"][None, ::2, ::2])
    assert np.allclose(class_means(pooled, items, 3).compute(), coarse.compute(), equal_nan=True)
    with pytest.raises(ValueError, match="at least one item"):
        class_means(brightness, items, 3, count=0)
    with pytest.raises(ValueError, match=r"\(n, R, h, w\) maps, got \(2, 8, 12\)"):
        class_means(lambda images: images[:, 0], items, 3, count=2)


def test_class_means_reject_other_grids_labels_and_map_counts():
    from fusionlab.metrics import ClassMeans
    means = ClassMeans(3)
    with pytest.raises(ValueError, match="nothing|no maps"):
        means.compute()
    with pytest.raises(ValueError, match="one grid"):
        means.update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        means.update(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 5))
    means.update(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="2 maps per image expected"):
        means.update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_border_scores_separate_borders_and_score_the_threshold():
    from fusionlab.metrics import BorderScores
    target = torch.tensor([[[1, 1, 0, 0, IGNORE_INDEX]]])                  # (1, 1, 5)
    p = torch.tensor([[[0.9, 0.4, 0.6, 0.1, 0.99]]])
    scores = BorderScores()
    scores.update(p, target)
    s = scores.compute()
    assert s["on"] == pytest.approx(0.65) and s["off"] == pytest.approx(0.35)
    assert s["separation"] == pytest.approx(0.3)
    assert s["precision"] == pytest.approx(1 / 2)      # 0.9 right, 0.6 wrong; 0.99 is ignored
    assert s["recall"] == pytest.approx(1 / 2)
    assert all(type(v) is float for v in s.values())         # plain numbers for the prose
    none_above = BorderScores()
    none_above.update(torch.zeros(1, 1, 5), target)
    assert math.isnan(none_above.compute()["precision"])
    with pytest.raises(ValueError, match="one shape"):
        scores.update(p[..., :4], target)
    with pytest.raises(ValueError, match="targets of 0, 1"):
        scores.update(p, torch.full((1, 1, 5), 2))
