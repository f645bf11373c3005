"""Finding ImageNet weights, and proof that they land where they belong."""

from collections import defaultdict

import cv2
import numpy as np
import pytest
import torch

from conftest import real_camvid, real_weights
from fusionlab.datasets.base import normalise
from fusionlab.encoders import MobileNetV2, MobileNetV2Encoder
from fusionlab.weights import WEIGHTS, WeightsNotFoundError, find_weights, sha256

PASSENGER_CARS = {407: "ambulance", 436: "beach wagon", 468: "cab", 511: "convertible",
                  609: "jeep", 627: "limousine", 656: "minivan", 661: "Model T", 717: "pickup",
                  751: "racer", 817: "sports car"}
"""ImageNet-1k class indices of passenger cars (torchvision's class order)."""


@pytest.fixture
def no_default_places(tmp_path, monkeypatch):
    """No FUSIONLAB_WEIGHTS, an empty torch.hub folder, no download."""
    monkeypatch.delenv("FUSIONLAB_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    return tmp_path


def test_missing_weights_name_every_place_and_the_url(no_default_places):
    with pytest.raises(WeightsNotFoundError) as err:
        find_weights("mobilenet_v2")
    text = str(err.value)
    assert str(no_default_places / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth") in text
    assert WEIGHTS["mobilenet_v2"].url in text and "not allowed" in text
    with pytest.raises(ValueError, match="resnet101"):
        find_weights("resnet101")


def test_an_explicit_path_is_authoritative(no_default_places):
    with pytest.raises(WeightsNotFoundError, match="no file"):
        find_weights("mobilenet_v2", no_default_places / "nowhere")
    with pytest.raises(WeightsNotFoundError, match="no file"):
        MobileNetV2Encoder.pretrained(path=no_default_places)  # a folder without the file


def test_a_file_with_another_hash_is_refused(no_default_places, monkeypatch):
    folder = no_default_places / "weights"
    folder.mkdir()
    fake = folder / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, fake)
    monkeypatch.setenv("FUSIONLAB_WEIGHTS", str(folder))
    with pytest.raises(WeightsNotFoundError, match=f"SHA-256 is {sha256(fake)}"):
        find_weights("mobilenet_v2")


def test_the_download_lands_in_the_hub_cache_checked(no_default_places, monkeypatch):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save({"x": torch.ones(3)}, dst)  # not the published file
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(WeightsNotFoundError, match="SHA-256"):
        find_weights("mobilenet_v2", download=True)
    assert calls == [(WEIGHTS["mobilenet_v2"].url, "b0353104")]


def test_sha256_of_a_known_file(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256(tmp_path / "abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


needs_real = pytest.mark.skipif(real_weights() is None or real_camvid() is None,
                                reason="needs FUSIONLAB_WEIGHTS (torchvision's MobileNetV2 "
                                       "file) and FUSIONLAB_DATA (CamVid)")


def _largest_car_crop(camvid) -> np.ndarray:
    """The largest connected region of CamVid's Car label (8) over the val split, cropped
    from its image and resized to 224 x 224 (uint8 RGB)."""
    best = (0, None)
    for label_file in sorted((camvid / "valannot").glob("*.png")):
        labels = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
        n, _, stats, _ = cv2.connectedComponentsWithStats((labels == 8).astype(np.uint8))
        for x, y, w, h, area in stats[1:n]:
            if area > best[0]:
                best = (area, (label_file.name, x, y, w, h))
    name, x, y, w, h = best[1]
    image = cv2.cvtColor(cv2.imread(str(camvid / "val" / name)), cv2.COLOR_BGR2RGB)
    return cv2.resize(image[y:y + h, x:x + w], (224, 224), interpolation=cv2.INTER_LINEAR)


def _car_probability(model: MobileNetV2, crop: np.ndarray) -> tuple[int, float]:
    with torch.no_grad():
        p = model.eval()(normalise(crop)[None]).softmax(1)[0]  # (1000,)
    return int(p.argmax()), float(p[list(PASSENGER_CARS)].sum())


@needs_real
def test_imagenet_weights_land_in_their_places():
    """The whole ImageNet model, loaded strictly from the file, calls a CamVid car a car; the
    same tensors moved among the keys of equal shape (a strict load too) do not."""
    crop = _largest_car_crop(real_camvid())
    model = MobileNetV2.pretrained(path=real_weights())
    top, cars = _car_probability(model, crop)
    assert top in PASSENGER_CARS and cars > 0.9

    state = model.state_dict()
    same_shape = defaultdict(list)
    for key, value in state.items():
        if value.is_floating_point():
            same_shape[(tuple(value.shape), key.rsplit(".", 1)[-1])].append(key)
    shuffled = dict(state)
    for keys in same_shape.values():
        for key, other in zip(keys, keys[1:] + keys[:1]):  # each takes its neighbour's tensor
            shuffled[key] = state[other]
    assert sum(not torch.equal(shuffled[k], state[k]) for k in state) > 200
    wrong = MobileNetV2()
    wrong.load_state_dict(shuffled, strict=True)
    top, cars = _car_probability(wrong, crop)
    assert top not in PASSENGER_CARS and cars < 0.01


@pytest.mark.skipif(real_weights() is None, reason="needs FUSIONLAB_WEIGHTS")
def test_the_encoder_holds_the_classifiers_features():
    model = MobileNetV2.pretrained(path=real_weights()).eval()
    enc = MobileNetV2Encoder.pretrained(path=real_weights()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(enc(x)["c5"], model.features(x))
