import pytest
import torch

from fusionlab.encoders import LEVELS, ResNetEncoder


@pytest.mark.parametrize("output_stride, expected", [
    (32, (4, 8, 16, 32)), (16, (4, 8, 16, 16)), (8, (4, 8, 8, 8))])
def test_stage_shapes_and_strides(output_stride, expected):
    enc = ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), output_stride=output_stride)
    feats = enc(torch.randn(2, 3, 64, 96))
    assert tuple(feats) == LEVELS
    assert tuple(enc.strides.values()) == expected
    for level, stride in zip(LEVELS, expected):
        assert feats[level].shape == (2, enc.out_channels[level], 64 // stride, 96 // stride)


def test_bottleneck_channels_and_free_block_layout():
    enc = ResNetEncoder(blocks=(3, 1, 1, 2), widths=(8, 8, 8, 8), block="bottleneck")
    assert enc.out_channels == {"c2": 32, "c3": 32, "c4": 32, "c5": 32}
    assert [len(getattr(enc, f"layer{i}")) for i in range(1, 5)] == [3, 1, 1, 2]
    assert enc(torch.randn(1, 3, 65, 63))["c5"].shape == (1, 32, 3, 2)


def test_torchvision_parameter_names():
    names = set(ResNetEncoder().state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
                "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"):
        assert key in names


@pytest.mark.parametrize("kwargs, message", [
    ({"blocks": (1, 1, 1)}, "blocks"), ({"widths": (8, 8, 8, 0)}, "widths"),
    ({"output_stride": 4}, "output_stride"), ({"block": "wide"}, "block")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNetEncoder(**kwargs)


def test_bad_input_names_the_shape():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(1, 1, 32, 32\)"):
        ResNetEncoder(widths=(8, 8, 8, 8))(torch.randn(1, 1, 32, 32))


def test_pretrained_offline_error_names_url(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    with pytest.raises(RuntimeError, match="resnet18-f37072fd.pth"):
        ResNetEncoder.pretrained("resnet18")
    with pytest.raises(ValueError, match="resnet101"):
        ResNetEncoder.pretrained("resnet101")
