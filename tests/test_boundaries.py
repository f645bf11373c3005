"""Boundaries from label maps: semantic boundaries, Euclidean dilation, DFN's border target."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fusionlab.boundaries
from fusionlab.boundaries import border_dilation, border_target, dilate, disk, label_boundaries


def test_ground_floor_imports_no_dataset_reader():
    tree = ast.parse(Path(fusionlab.boundaries.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "math", "cv2", "numpy", "torch", "fusionlab"}
    assert not (Path(fusionlab.boundaries.__file__).parent / "datasets" / "boundaries.py").exists()


def test_label_boundaries_skip_void():
    labels = torch.tensor([[[0, 0, 1], [0, 255, 1]]])
    edge = label_boundaries(labels)
    assert edge.tolist() == [[[False, True, True], [False, False, False]]]


def test_label_boundaries_reject_float_labels():
    with pytest.raises(TypeError, match="float32"):
        label_boundaries(torch.zeros(1, 2, 2))


@pytest.mark.parametrize("radius", [0, 0.5, 1, 1.5, 2, 2.25, 3.2])
def test_dilate_is_the_euclidean_distance_ball(radius):
    rng = np.random.default_rng(0)
    mask = rng.random((2, 9, 11)) < 0.04
    mask[1] = False  # an empty map stays empty
    grown = dilate(torch.from_numpy(mask), radius).numpy()
    yy, xx = np.mgrid[0:9, 0:11]
    for m, g in zip(mask, grown):
        ys, xs = np.nonzero(m)
        d2 = (yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2  # (9, 11, points)
        expected = (np.sqrt(d2.min(-1)) <= radius) if len(ys) else np.zeros_like(m)
        assert np.array_equal(g, expected)


def test_disk_keeps_offsets_on_the_circle_and_rejects_negative_radius():
    assert disk(2.0).tolist()[2] == [1, 1, 1, 1, 1] and disk(2.0)[0, 2] == 1
    assert disk(2.0)[0, 1] == 0  # (2, 1) is sqrt(5) away
    assert disk(2 / math.hypot(10, 10) * math.hypot(10, 10))[0, 2] == 1
    with pytest.raises(ValueError, match="-1"):
        disk(-1)


@pytest.mark.parametrize("size, side", [((512, 512), 7), ((120, 160), 3), ((180, 240), 3),
                                        ((360, 480), 5), ((24, 32), 1)])
def test_border_dilation_rule(size, side):
    assert border_dilation(*size) == side


@pytest.mark.parametrize("dilation", [1, 3, 7])
def test_border_target_two_regions_is_the_dilated_line_between_them(dilation):
    labels = torch.zeros(1, 20, 24, dtype=torch.long)
    labels[:, :, 10:] = 4  # class change between columns 9 and 10
    border = border_target(labels, dilation=dilation)
    assert border.shape == (1, 20, 24) and border.dtype == torch.bool
    columns = set(torch.nonzero(border[0].all(0)).flatten().tolist())
    assert (border[0] == border[0, :1]).all()  # every row the same
    r = dilation // 2
    assert columns in ({*range(9 - r, 9 + r + 1)}, {*range(10 - r, 10 + r + 1)})
    assert border[0].sum() == 20 * dilation


def test_border_target_default_dilation_scales_with_size():
    labels = torch.zeros(1, 120, 160, dtype=torch.long)
    labels[:, 60:] = 2
    assert (border_target(labels) == border_target(labels, dilation=3)).all()
    assert border_target(labels)[0, :, 80].sum() == 3


def test_border_target_one_class_is_empty():
    for value in (0, 3):
        assert not border_target(torch.full((2, 30, 40), value)).any()


def test_border_target_never_marks_ignored_pixels():
    rng = np.random.default_rng(1)
    labels = torch.from_numpy(rng.integers(0, 4, (2, 6, 8)).repeat(4, 1).repeat(4, 2))
    labels[0, 10:14] = 255
    labels[1, :, 5:9] = 255
    border = border_target(labels, dilation=7)
    assert border.any() and not border[labels == 255].any()
    assert border[labels != 255].float().mean() > 0.3  # the borders of the blocks are there


def band(left: int, right: int, dilation: int, vertical: bool = False) -> list[int]:
    """The columns (rows if ``vertical``) that ``border_target`` marks on a 12 x 12 map with
    ``left`` in columns (rows) 0..5 and ``right`` from 6 on."""
    labels = torch.full((1, 12, 12), left)
    if vertical:
        labels[:, 6:, :] = right
    else:
        labels[:, :, 6:] = right
    border = border_target(labels, dilation=dilation)[0]
    return border.any(1 if vertical else 0).nonzero().flatten().tolist()


@pytest.mark.parametrize("vertical", [False, True])
@pytest.mark.parametrize("dilation", [1, 3, 7])
def test_border_target_class_edges_do_not_depend_on_label_indices(dilation, vertical):
    # Canny's line is column (row) 5, the smaller index beside the change, whatever the labels
    r = dilation // 2
    expected = list(range(5 - r, 6 + r))
    for left, right in [(0, 4), (4, 0), (1, 3), (3, 1)]:
        assert band(left, right, dilation, vertical) == expected


@pytest.mark.parametrize("vertical", [False, True])
@pytest.mark.parametrize("dilation", [1, 3, 7])
def test_border_target_void_beside_a_class_is_no_border(dilation, vertical):
    for cls in (0, 3):
        assert band(255, cls, dilation, vertical) == []  # void on the smaller-index side
        assert band(cls, 255, dilation, vertical) == []  # void on the larger-index side


@pytest.mark.parametrize("dilation", [3, 5, 7])
def test_border_target_keeps_a_class_change_under_a_thin_void_line(dilation):
    labels = torch.zeros(1, 12, 13, dtype=torch.long)
    labels[:, :, 6] = 255  # a void line between class 0 (columns 0..5) and class 4 (7..12)
    labels[:, :, 7:] = 4
    marked = border_target(labels, dilation=dilation)[0].any(0).nonzero().flatten().tolist()
    r = dilation // 2  # Canny's line falls in the void column 6, the band reaches r each side
    assert marked == [*range(6 - r, 6), *range(7, 7 + r)]


def test_border_target_of_crop_padding_is_that_of_the_replicated_edge():
    # void padding at the bottom and right (as a crop adds it) makes no border of its own: the
    # target equals the one of the labels with their last row and column repeated instead
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, (2, 5, 6)).repeat(4, 1).repeat(4, 2)  # (2, 20, 24)
    replicated = torch.from_numpy(np.pad(labels, ((0, 0), (0, 7), (0, 5)), mode="edge"))
    padded = replicated.clone()
    padded[:, 20:] = 255
    padded[:, :, 24:] = 255
    for dilation in (1, 3, 7):
        expected = border_target(replicated, dilation=dilation) & (padded != 255)
        assert torch.equal(border_target(padded, dilation=dilation), expected)
    assert not border_target(torch.full((1, 6, 6), 255)).any()  # nothing labelled


def test_border_target_bad_input():
    with pytest.raises(ValueError, match="300"):
        border_target(torch.full((1, 4, 4), 300))
    with pytest.raises(ValueError, match="odd"):
        border_target(torch.zeros(1, 4, 4, dtype=torch.long), dilation=4)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        border_target(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="float"):
        border_target(torch.zeros(1, 4, 4))


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, (2, 7, 9))
    labels[0, 2:4, 3:6] = 255
    edges = label_boundaries(labels)
    assert isinstance(edges, np.ndarray)
    assert np.array_equal(edges, label_boundaries(torch.from_numpy(labels)).numpy())
    grown = dilate(edges, 1.5)
    assert isinstance(grown, np.ndarray)
    assert np.array_equal(grown, dilate(torch.from_numpy(edges), 1.5).numpy())
