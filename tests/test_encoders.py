import pytest
import torch

from fusionlab.encoders import LEVELS, MobileNetV2, MobileNetV2Encoder, ResNetEncoder


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


def test_pretrained_resnet_unknown_name():
    with pytest.raises(ValueError, match="resnet101"):
        ResNetEncoder.pretrained("resnet101")


@pytest.mark.parametrize("output_stride, expected", [
    (32, (4, 8, 16, 32)), (16, (4, 8, 16, 16)), (8, (4, 8, 8, 8))])
def test_mobilenet_v2_stages_strides_and_dilation(output_stride, expected):
    enc = MobileNetV2Encoder(output_stride)
    feats = enc(torch.randn(1, 3, 64, 96))
    assert tuple(feats) == LEVELS
    assert enc.out_channels == {"c2": 24, "c3": 32, "c4": 96, "c5": 1280}
    assert tuple(enc.strides.values()) == expected
    for level, stride in zip(LEVELS, expected):
        assert feats[level].shape == (1, enc.out_channels[level], 64 // stride, 96 // stride)
    # the depthwise convolutions past the output stride are dilated by the stride given up
    # (features 1-6 at strides 2-8, 7-13 at 16, 14-17 at 32 without dilation)
    dilations = [layer.conv[-3][0].dilation[0] for layer in enc.features[1:18]]
    expected_dilations = {32: [1] * 17, 16: [1] * 13 + [2] * 4, 8: [1] * 6 + [2] * 7 + [4] * 4}
    assert dilations == expected_dilations[output_stride]


def test_mobilenet_v2_has_torchvisions_layout():
    """The parameter names and shapes of torchvision's mobilenet_v2 (3,504,872 parameters;
    the classifier's 1,281,000 are not in the encoder)."""
    model, enc = MobileNetV2(), MobileNetV2Encoder()
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 3_504_872
    assert sum(p.numel() for p in enc.parameters()) == 3_504_872 - 1_281_000
    assert {k: v.shape for k, v in enc.state_dict().items()} == {
        k: v.shape for k, v in state.items() if not k.startswith("classifier.")}
    assert state["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)  # no expansion
    assert state["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)  # t = 6
    assert state["features.17.conv.2.weight"].shape == (320, 960, 1, 1)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    residual = [i for i, layer in enumerate(model.features[1:18], 1) if layer.use_res_connect]
    assert residual == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


def test_mobilenet_v2_frozen_bn_stays_frozen():
    enc = MobileNetV2Encoder(frozen_bn=True).train()
    bns = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    before = bns[0].running_mean.clone()
    enc(torch.randn(2, 3, 32, 32))
    assert torch.equal(bns[0].running_mean, before)
    assert any(p.requires_grad for p in enc.parameters())
    trainable = MobileNetV2Encoder().train()
    assert all(m.training for m in trainable.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_mobilenet_v2_bad_arguments_and_input():
    with pytest.raises(ValueError, match="output_stride.*4"):
        MobileNetV2Encoder(4)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(1, 1, 32, 32\)"):
        MobileNetV2Encoder()(torch.randn(1, 1, 32, 32))
