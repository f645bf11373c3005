"""ExFuse and its GCN base: the identities each module must satisfy."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from fusionlab.bench import count_flops
from fusionlab.encoders import ResNetEncoder
from fusionlab.losses import DeepSupervisionLoss
from fusionlab.models import (ECRE, GCN, BoundaryRefinement, DenselyAdjacentPrediction, ExFuse,
                              GlobalConvBlock, SemanticEmbeddingBranch, layer_rearrangement)
from fusionlab.models.exfuse import ECRE_VARIANTS, SubPixelUpsample, rearranged_blocks
from fusionlab.models.gcn import Deconv2x, crop_to


def small_encoder():
    return ResNetEncoder(blocks=(2, 2, 2, 2), widths=(8, 16, 32, 64))


# -- GCN ------------------------------------------------------------------------------------
def test_global_conv_block_sees_exactly_a_k_by_k_square():
    torch.manual_seed(0)
    block = GlobalConvBlock(1, 1, kernel_size=5)
    x = torch.zeros(1, 1, 15, 15, requires_grad=True)
    block(x)[0, 0, 7, 7].backward()
    reached = x.grad[0, 0] != 0
    expected = torch.zeros(15, 15, dtype=torch.bool)
    expected[5:10, 5:10] = True
    assert torch.equal(reached, expected)


def test_boundary_refinement_is_residual():
    br = BoundaryRefinement(4)
    torch.nn.init.zeros_(br.residual[2].weight)
    torch.nn.init.zeros_(br.residual[2].bias)
    x = torch.randn(2, 4, 7, 9)
    assert torch.equal(br(x), x)


def test_deconv_starts_as_bilinear_upsampling():
    x = torch.randn(1, 3, 6, 8)
    up = Deconv2x(3)(x, torch.empty(12, 16))
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    # Equal away from the border, where the deconvolution pads with zeros.
    assert torch.allclose(up[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1], atol=1e-6)


def test_crop_to():
    x = torch.randn(1, 2, 8, 10)
    assert crop_to(x, torch.empty(7, 10)).shape == (1, 2, 7, 10)
    with pytest.raises(ValueError, match="one extra row"):
        crop_to(x, torch.empty(6, 10))
    with pytest.raises(ValueError, match="one extra row"):
        crop_to(x, torch.empty(9, 10))


def test_gcn_needs_stride_32_encoder():
    with pytest.raises(ValueError, match="strides"):
        GCN(5, ResNetEncoder((1, 1, 1, 1), (8, 8, 8, 8), output_stride=16))
    with pytest.raises(ValueError, match="odd"):
        GCN(5, small_encoder(), kernel_size=4)


# -- layer rearrangement --------------------------------------------------------------------
def test_rearranged_blocks_moves_late_blocks_to_early_stages():
    assert rearranged_blocks((2, 2, 2, 2), 0) == (2, 2, 2, 2)
    assert rearranged_blocks((2, 2, 2, 2), 1) == (3, 2, 2, 1)
    assert rearranged_blocks((2, 2, 2, 2), 2) == (3, 3, 1, 1)
    resnext = rearranged_blocks((3, 4, 23, 3), 14)
    assert sum(resnext) == 33 and resnext[2] < 23 and resnext[0] > 3 and resnext[1] > 4
    with pytest.raises(ValueError, match="cannot move"):
        rearranged_blocks((1, 1, 1, 1), 1)
    with pytest.raises(ValueError, match="moves"):
        rearranged_blocks((2, 2, 2, 2), -1)


def test_layer_rearrangement_keeps_flops_within_5_percent():
    base = ResNetEncoder((2, 2, 2, 2), (32, 64, 128, 256))
    new = layer_rearrangement(base, moves=2, size=(120, 160))
    assert new.blocks == (3, 3, 1, 1)
    assert new.widths == base.widths and new.out_channels == base.out_channels
    before, after = count_flops(base, (120, 160)), count_flops(new, (120, 160))
    assert abs(after - before) <= 0.05 * before
    with pytest.raises(ValueError, match="FLOPs"):
        layer_rearrangement(base, moves=2, size=(120, 160), tolerance=0.001)


# -- semantic embedding branch ----------------------------------------------------------------
def seb_inputs():
    torch.manual_seed(0)
    low = torch.randn(2, 4, 16, 20)
    highs = [torch.randn(2, 6, 8, 10), torch.randn(2, 8, 4, 5), torch.randn(2, 8, 2, 3)]
    return SemanticEmbeddingBranch(4, [6, 8, 8]), low, highs


def test_seb_with_unit_masks_is_the_identity():
    seb, low, highs = seb_inputs()
    for conv in seb.convs:
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.ones_(conv.bias)
    assert torch.allclose(seb(low, highs), low, rtol=0, atol=1e-6)


@pytest.mark.parametrize("zeroed", [0, 1, 2])
def test_seb_zero_from_any_higher_level_switches_everything_off(zeroed):
    seb, low, highs = seb_inputs()
    torch.nn.init.zeros_(seb.convs[zeroed].weight)
    torch.nn.init.zeros_(seb.convs[zeroed].bias)
    assert torch.equal(seb(low, highs), torch.zeros_like(low))


def test_seb_is_the_product_of_every_higher_level():
    seb, low, highs = seb_inputs()
    masks = seb.masks(low, highs)
    assert [m.shape for m in masks] == [low.shape] * 3
    assert torch.allclose(seb(low, highs), low * masks[0] * masks[1] * masks[2])
    for i in range(3):  # changing any one higher level changes the output
        changed = list(highs)
        changed[i] = highs[i] + 1
        assert not torch.allclose(seb(low, changed), seb(low, highs))
    with pytest.raises(ValueError, match="3 higher levels"):
        seb(low, highs[:2])


# -- ECRE -------------------------------------------------------------------------------------
def test_subpixel_lays_channels_out_as_space():
    up = SubPixelUpsample(2, scale=2)
    x = torch.randn(1, 2, 3, 4)
    y = up(x, torch.empty(6, 8))
    conv = up.conv(x)  # (1, 2 * 4, 3, 4)
    for c, a, b in itertools.product(range(2), range(2), range(2)):
        # Channel c*r^2 + a*r + b of the convolution is sub-pixel (a, b) of class c.
        assert torch.equal(y[0, c, a::2, b::2], conv[0, c * 4 + a * 2 + b])


@pytest.mark.parametrize("variant", sorted(ECRE_VARIANTS))
def test_ecre_variants(variant):
    ecre = ECRE(3, variant)
    upsample, supervised = ECRE_VARIANTS[variant]
    assert ecre.supervised == supervised
    assert isinstance(ecre.upsample, SubPixelUpsample if upsample == "subpixel" else Deconv2x)
    assert ecre(torch.randn(2, 3, 5, 6), torch.empty(9, 12)).shape == (2, 3, 9, 12)
    with pytest.raises(ValueError, match="variant"):
        ECRE(3, "bilinear")


# -- DAP --------------------------------------------------------------------------------------
def dap_by_the_formula(r, num_classes, k):
    """out_c(i, j) = 1/k^2 SUM_{l,m} r_c^{(l*k+m)}(i + l - k//2, j + m - k//2), zero outside."""
    n, _, h, w = r.shape
    out = torch.zeros(n, num_classes, h, w, dtype=r.dtype)
    for c, i, j, l, m in itertools.product(range(num_classes), range(h), range(w), range(k),
                                           range(k)):
        y, x = i + l - k // 2, j + m - k // 2
        if 0 <= y < h and 0 <= x < w:
            out[:, c, i, j] += r[:, (l * k + m) * num_classes + c, y, x]
    return out / k ** 2


@pytest.mark.parametrize("k", [3, 5])
def test_dap_matches_the_papers_formula(k):
    torch.manual_seed(0)
    r = torch.randn(2, 3 * k * k, 6, 7, dtype=torch.float64)
    assert torch.allclose(DenselyAdjacentPrediction(k)(r), dap_by_the_formula(r, 3, k))


def test_dap_reads_each_group_at_its_neighbour():
    """A single vote of group (l, m) at (y, x) lands on (y - l + 1, x - m + 1) for k = 3."""
    k, classes = 3, 2
    for l, m in itertools.product(range(k), range(k)):
        r = torch.zeros(1, classes * k * k, 5, 5)
        r[0, (l * k + m) * classes + 1, 2, 2] = 9.0
        out = DenselyAdjacentPrediction(k)(r)
        assert out[0, 0].abs().sum() == 0
        assert out[0, 1].nonzero().tolist() == [[2 - l + 1, 2 - m + 1]]
        assert out[0, 1, 2 - l + 1, 2 - m + 1] == 1.0


def test_pixel_shuffle_and_average_pooling_is_not_dap():
    """A public reimplementation's DAP: pixel shuffle by k, then k x k average pooling. It
    averages the k^2 groups at the same pixel, with no spatial shift."""
    torch.manual_seed(0)
    k, classes = 3, 4
    r = torch.randn(1, classes * k * k, 8, 8)
    shuffled = F.avg_pool2d(F.pixel_shuffle(r, k), k)  # (1, C, 8, 8)
    dap = DenselyAdjacentPrediction(k)(r)
    assert shuffled.shape == dap.shape
    assert not torch.allclose(shuffled, dap, atol=1e-3)
    # What it does compute: the plain mean over each class's k^2 consecutive channels.
    assert torch.allclose(shuffled, r.view(1, classes, k * k, 8, 8).mean(2), atol=1e-6)


def test_dap_rejects_bad_channels():
    with pytest.raises(ValueError, match=r"\(N, C\*9, H, W\)"):
        DenselyAdjacentPrediction(3)(torch.zeros(1, 10, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        DenselyAdjacentPrediction(2)


# -- the models -------------------------------------------------------------------------------
FLAGS = [dict(), dict(lr=True), dict(ss=True), dict(seb=True), dict(ecre=True),
         dict(ecre="subpixel"), dict(ecre="deconv+supervision"), dict(dap=True),
         dict(lr=True, ss=True, seb=True, ecre=True, dap=True)]


def expected_aux(flags):
    names = {f"ss_c{i}" for i in range(2, 6)} if flags.get("ss") else set()
    if flags.get("ecre") in (True, "ecre", "deconv+supervision"):
        names.add("ecre")
    return names


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "+".join(f) or "gcn")
def test_exfuse_shapes_aux_names_and_gradients(flags):
    torch.manual_seed(0)
    model = ExFuse(5, small_encoder(), kernel_size=5, **flags)
    out = model(torch.randn(2, 3, 123, 157))
    assert out.logits.shape == (2, 5, 123, 157)
    assert set(out.aux) == expected_aux(flags)
    assert all(a.shape == (2, 5, 123, 157) for a in out.aux.values())
    target = torch.randint(0, 5, (2, 123, 157))
    loss, parts = DeepSupervisionLoss(0.4)(out, target)
    loss.backward()
    assert set(parts) == {"main"} | {f"aux/{n}" for n in out.aux}
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


def test_switched_on_modules_exist():
    model = ExFuse(5, small_encoder(), lr=True, ss=True, seb=True, ecre=True, dap=True)
    assert model.encoder.blocks == (3, 3, 1, 1)
    assert sorted(model.ss) == ["c2", "c3", "c4", "c5"]
    assert sorted(model.seb) == ["c2", "c3", "c4"]
    assert [len(model.seb[lv].convs) for lv in ("c2", "c3", "c4")] == [3, 2, 1]
    assert isinstance(model.up["c4"], ECRE) and isinstance(model.up["c3"], Deconv2x)
    assert model.flags == {"lr": True, "ss": True, "seb": True, "ecre": "ecre", "dap": True}


def test_exfuse_with_everything_off_is_gcn():
    torch.manual_seed(0)
    gcn = GCN(5, small_encoder())
    exfuse = ExFuse(5, small_encoder())
    assert gcn.state_dict().keys() == exfuse.state_dict().keys()
    exfuse.load_state_dict(gcn.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(gcn.eval()(x).logits, exfuse.eval()(x).logits)


def test_bad_ecre_variant():
    with pytest.raises(ValueError, match="ecre must be"):
        ExFuse(5, small_encoder(), ecre="pixelshuffle")


def test_dap_votes_average_to_the_output():
    torch.manual_seed(0)
    dap = DenselyAdjacentPrediction(3)
    r = torch.randn(2, 4 * 9, 5, 6)
    out = dap(r)
    for i, j in [(0, 0), (2, 3), (4, 5)]:
        votes = dap.votes(r, i, j)
        assert votes.shape == (2, 3, 3, 4)
        assert torch.allclose(votes.mean((1, 2)), out[:, :, i, j], atol=1e-6)
    # vote (0, 2) for (2, 3) is group (0, 2) read at the neighbour (1, 4)
    assert torch.equal(dap.votes(r, 2, 3)[:, 0, 2], r[:, 2 * 4:3 * 4, 1, 4])
    assert dap.votes(r, 0, 0)[:, 0].abs().sum() == 0  # above the top row: zero padding
    with pytest.raises(ValueError, match="outside"):
        dap.votes(r, 5, 0)
