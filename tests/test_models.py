import pytest
import torch

from fusionlab.encoders import ResNetEncoder
from fusionlab.models import FCN, FPN, AddFusion, ConcatFusion, SegOutput, UNet


def small_encoder():
    return ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 16, 32))


MODELS = [
    lambda: FCN(5, small_encoder(), channels=8),
    lambda: FPN(5, small_encoder(), channels=8),
    lambda: UNet(5, small_encoder(), channels=8),
    lambda: FPN(5, small_encoder(), levels=("c3", "c5"), channels=8),
    lambda: UNet(5, small_encoder(), levels=("c5",), channels=8),
]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("size", [(64, 96), (123, 157)])
def test_logits_at_input_size_and_gradients_everywhere(make, size):
    torch.manual_seed(0)
    model = make()
    out = model(torch.randn(2, 3, *size))
    assert isinstance(out, SegOutput)
    assert out.logits.shape == (2, 5, *size)
    assert out.aux == {}
    out.logits.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


def test_levels_choose_the_fusion_blocks():
    model = FPN(5, small_encoder(), levels=("c4", "c2", "c5"), channels=8)
    assert model.levels == ("c2", "c4", "c5")
    assert sorted(model.decoder.fusions) == ["c2", "c4"]
    assert all(isinstance(f, AddFusion) for f in model.decoder.fusions.values())
    unet = UNet(5, small_encoder(), channels=8)
    assert all(isinstance(f, ConcatFusion) for f in unet.decoder.fusions.values())


def test_lowest_level_is_used():
    """Changing the c2 input changes the FPN c2-c5 output but not the FPN c3-c5 output."""
    torch.manual_seed(0)
    enc = small_encoder().eval()
    x = torch.randn(1, 3, 64, 64)
    feats = enc(x)
    with_c2 = FPN(5, enc, channels=8).eval()
    without_c2 = FPN(5, enc, levels=("c3", "c4", "c5"), channels=8).eval()
    changed = dict(feats, c2=feats["c2"] + torch.randn_like(feats["c2"]))
    assert not torch.allclose(with_c2.decode(feats)[0], with_c2.decode(changed)[0])
    assert torch.equal(without_c2.decode(feats)[0], without_c2.decode(changed)[0])


@pytest.mark.parametrize("levels", [(), ("c1",), ("c3", "c3")])
def test_bad_levels(levels):
    with pytest.raises(ValueError, match="levels"):
        FPN(5, small_encoder(), levels=levels)


def test_bad_input():
    with pytest.raises(ValueError, match="float"):
        FCN(5, small_encoder())(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="num_classes"):
        FCN(1, small_encoder())
