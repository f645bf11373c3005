import math

import numpy as np
import pytest
import torch

from fusionlab.datasets.boundaries import dilate, label_boundaries
from fusionlab.losses import DeepSupervisionLoss, cross_entropy
from fusionlab.metrics import SegmentationMetrics
from fusionlab.models import SegOutput


def test_cross_entropy_ignores_void_pixels():
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [255, 2]]])
    expected = -torch.log_softmax(logits, 1)[0, [0, 1, 2], [0, 0, 1], [0, 1, 1]].mean()
    assert torch.allclose(cross_entropy(logits, target), expected)


def test_cross_entropy_all_ignored_is_zero_with_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None


def test_cross_entropy_names_bad_labels_and_shapes():
    with pytest.raises(ValueError, match=r"0\.\.2.*7"):
        cross_entropy(torch.randn(1, 3, 2, 2), torch.tensor([[[0, 7], [1, 2]]]))
    with pytest.raises(ValueError, match=r"\(1, 3, 2, 2\).*\(1, 3, 3\)"):
        cross_entropy(torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))


def test_deep_supervision_sum():
    torch.manual_seed(0)
    target = torch.randint(0, 4, (2, 5, 5))
    out = SegOutput(torch.randn(2, 4, 5, 5), {"c3": torch.randn(2, 4, 5, 5),
                                              "c4": torch.randn(2, 4, 5, 5)})
    total, parts = DeepSupervisionLoss({"c3": 0.5, "c4": 0.25})(out, target)
    expected = (cross_entropy(out.logits, target) + 0.5 * cross_entropy(out.aux["c3"], target)
                + 0.25 * cross_entropy(out.aux["c4"], target))
    assert torch.allclose(total, expected)
    assert set(parts) == {"main", "aux/c3", "aux/c4"}
    total_c3_only, parts = DeepSupervisionLoss({"c3": 0.5})(out, target)
    assert "aux/c4" not in parts
    assert torch.allclose(total_c3_only, expected - 0.25 * cross_entropy(out.aux["c4"], target))


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
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[:, :, 5:] = 1  # a vertical boundary between columns 4 and 5
    shifted = torch.zeros_like(target)
    shifted[:, :, 7:] = 1  # the same boundary two pixels to the right
    tight = SegmentationMetrics(2, tolerance=1)
    tight.update(shifted, target)
    loose = SegmentationMetrics(2, tolerance=2)
    loose.update(shifted, target)
    # true boundary columns 4, 5; predicted 6, 7. With d=1 only column 6 is near column 5.
    assert tight.compute()["boundary_precision"] == pytest.approx(0.5)
    assert tight.compute()["boundary_recall"] == pytest.approx(0.5)
    assert loose.compute()["boundary_f"] == pytest.approx(1.0)


def test_label_boundaries_skip_void():
    labels = torch.tensor([[[0, 0, 1], [0, 255, 1]]])
    edge = label_boundaries(labels)
    assert edge.tolist() == [[[False, True, True], [False, False, False]]]
    assert dilate(edge, 1)[0, 1].tolist() == [True, True, True]


def test_metric_errors():
    m = SegmentationMetrics(3)
    with pytest.raises(ValueError, match="0..2"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 5))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))
