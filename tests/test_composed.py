"""Composed models: DFN's Border Network added to another model (chapter 6)."""

import pytest
import torch

from fusionlab.datasets import SyntheticScenes
from fusionlab.encoders import ResNetEncoder
from fusionlab.experiments import PROFILES, BuildContext, build_model
from fusionlab.losses import SegmentationLoss
from fusionlab.models import FPN
from fusionlab.models.composed import BorderSupervised
from fusionlab.models.dfn import DFN
from fusionlab.models.dupsampling import DUpsampling
from fusionlab.models.gff import GFFNet


def _encoder():
    return ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64))


def test_border_supervision_adds_the_border_heads_and_leaves_the_prediction_alone():
    torch.manual_seed(0)
    inner = FPN(5, _encoder(), channels=16)
    model = BorderSupervised(inner).eval()
    images = torch.randn(2, 3, 32, 48)
    out = model(images)
    assert out.logits.shape == (2, 5, 32, 48)
    assert sorted(out.aux) == ["border_c2", "border_c3", "border_c4", "border_c5"]
    assert all(b.shape == (2, 1, 32, 48) for b in out.aux.values())
    torch.testing.assert_close(out.logits, inner(images).logits)  # the borders only train
    assert model.encoder is inner.encoder
    terms = model.aux_losses()
    assert sorted(terms) == sorted(out.aux)
    assert all(t.weight == 0.1 and repr(t.fn).startswith("BorderLoss") for t in terms.values())


def test_border_supervision_keeps_the_models_own_terms_and_trains_the_encoder():
    torch.manual_seed(0)
    model = BorderSupervised(GFFNet(5, _encoder(), channels=16), border_weight=0.5)
    assert sorted(model.aux_losses()) == ["border_c2", "border_c3", "border_c4", "border_c5",
                                          "c4"]
    assert model.aux_losses()["c4"].weight == 0.4
    out = model(torch.randn(2, 3, 32, 48))
    labels = torch.randint(0, 5, (2, 32, 48))
    labels[:, :16] = 0  # a region: borders exist
    labels[:, 16:] = 1
    total, parts = SegmentationLoss.for_model(model)(out, labels)
    assert set(parts) == {"main", "aux/c4", *(f"aux/border_c{i}" for i in range(2, 6))}
    # the border term reaches the encoder: it shapes the features the prediction reads
    model.zero_grad()
    sum(out.aux[f"border_c{i}"].mean() for i in range(2, 6)).backward()
    assert model.model.encoder.conv1.weight.grad.abs().sum() > 0


def test_border_supervision_refuses_bad_input():
    with pytest.raises(TypeError, match="SegmentationModel"):
        BorderSupervised(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="already has a Border Network"):
        BorderSupervised(DFN(5, _encoder(), channels=16))
    with pytest.raises(ValueError, match="finite"):
        BorderSupervised(FPN(5, _encoder(), channels=16), border_weight=-1)
    with pytest.raises(ValueError, match="focal"):
        BorderSupervised(FPN(5, _encoder(), channels=16), focal="nope")


def test_the_composed_builder_switches_borders_and_the_dupsampling_head():
    profile = PROFILES["smoke"]
    ctx = BuildContext(11, profile, SyntheticScenes(8, profile.size))
    full = build_model("composed", ctx)
    assert isinstance(full, BorderSupervised) and isinstance(full.model, GFFNet)
    assert any(isinstance(m, DUpsampling) for m in full.modules())
    assert [m.ratio for m in full.modules() if isinstance(m, DUpsampling)] == [4]
    out = full(torch.randn(1, 3, *profile.size))
    assert out.logits.shape == (1, 11, *profile.size)
    plain = build_model("composed", ctx, border=False, head="conv")
    assert isinstance(plain, GFFNet) and not any(isinstance(m, DUpsampling)
                                                 for m in plain.modules())
    with pytest.raises(ValueError, match="head must be"):
        build_model("composed", ctx, head="bilinear")
    with pytest.raises(ValueError, match="train_set"):
        build_model("composed", BuildContext(11, profile))
