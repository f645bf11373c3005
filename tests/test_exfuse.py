"""ExFuse and its GCN base: the identities each module must satisfy."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from fusionlab.bench import count_flops
from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import upsample_like
from fusionlab.models.base import identity_head
from fusionlab.models.exfuse import (DAP_MODES, ECRE, ECRE_VARIANTS, SS_MODES,
                                     DenselyAdjacentPrediction, ExFuse, SemanticEmbeddingBranch,
                                     SemanticSupervisionHead, SubPixelUpsample,
                                     bilinear_subpixel_taps, layer_rearrangement,
                                     rearranged_blocks)
from fusionlab.models.gcn import GCN, BoundaryRefinement, Deconv2x, GlobalConvBlock, crop_to


def small_encoder(blocks=(2, 2, 2, 2)):
    return ResNetEncoder(blocks=blocks, widths=(8, 16, 32, 64))


class Recorder:
    """Forward hooks that keep what chosen submodules receive and return."""

    def __init__(self, **modules):
        self.inputs, self.outputs = {}, {}
        for name, module in modules.items():
            module.register_forward_hook(self._hook(name))

    def _hook(self, name):
        def hook(module, args, output):
            self.inputs[name], self.outputs[name] = args, output
        return hook


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


def test_top_down_refines_every_fused_map():
    """s_l = BR(t_l + Up(s_(l+1))) at c4, c3 and c2 (GCN, Peng et al. 2017, Fig. 2): a boundary
    refinement after every fusion, the last one giving the final score map s_2."""
    torch.manual_seed(0)
    model = GCN(5, small_encoder(), kernel_size=5).eval()
    scores = {lv: torch.randn(1, 5, 64 // s, 64 // s) for lv, s in zip(LEVELS, (4, 8, 16, 32))}
    with torch.no_grad():
        s2, _ = model.top_down(scores)
        s = scores["c5"]
        for lv in ("c4", "c3", "c2"):
            fused = scores[lv] + model.up[lv](s, scores[lv])  # t_l + Up(s_(l+1))
            s = model.refine_fused[lv](fused)
            assert not torch.allclose(s, fused, atol=1e-3)  # BR is not the identity here
    assert torch.allclose(s2, s, atol=1e-6)


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


def test_gcn_logits_are_the_head_of_s2():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 61, 83)
    for head in (None, torch.nn.Conv2d(5, 5, 1)):
        factory = identity_head if head is None else (lambda c, k, head=head: head)
        model = GCN(5, small_encoder(), kernel_size=5, head=factory).eval()
        rec = Recorder(encoder=model.encoder, s2=model.refine_fused["c2"])
        logits = model(x).logits
        s2 = rec.outputs["s2"]  # the top-down output at stride 4
        assert s2.shape == (2, 5, 16, 21)
        expected = s2 if head is None else F.conv2d(s2, head.weight, head.bias)
        assert torch.allclose(logits, upsample_like(expected, x), atol=1e-6)
        # s2 is the top-down fusion of the stage scores (not, e.g., the c2 stage score alone)
        assert torch.allclose(s2, model.top_down(model.stage_scores(rec.outputs["encoder"]))[0])


def test_gcn_head_errors():
    with pytest.raises(TypeError, match="head must build the head"):
        GCN(5, small_encoder(), head="dupsampling")
    with pytest.raises(TypeError, match="got Conv2d"):  # a module built already
        GCN(5, small_encoder(), head=torch.nn.Conv2d(5, 5, 1))
    with pytest.raises(ValueError, match="one input channel per class"):
        identity_head(5, 7)
    model = GCN(5, small_encoder(), head=lambda c, k: torch.nn.Conv2d(c, 7, 1)).eval()
    with pytest.raises(ValueError, match=r"\(N, 5, h, w\) logits, got \(1, 7, 8, 8\)"):
        model(torch.randn(1, 3, 32, 32))


# -- layer rearrangement --------------------------------------------------------------------
def balanced_by_hand(blocks):
    """The end point of any balancing by single moves: the total spread evenly, stages that
    started above the mean ending on the high side, and the fewest moves that reach it."""
    total, n = sum(blocks), len(blocks)
    low, extra = divmod(total, n)
    # the `extra` stages that keep low + 1 are the fullest ones (ties: the lowest stage)
    keep_high = sorted(range(n), key=lambda i: (-blocks[i], i))[:extra]
    target = tuple(low + (i in keep_high) for i in range(n))
    moves = sum(max(0, b - t) for b, t in zip(blocks, target))
    return target, moves


def test_rearranged_blocks_balances_the_papers_layout():
    assert rearranged_blocks((3, 4, 23, 3)) == (8, 8, 9, 8)  # ResNeXt-101, ExFuse Sec. 3.1
    assert rearranged_blocks((2, 2, 2, 2)) == (2, 2, 2, 2)  # already balanced: unchanged
    assert rearranged_blocks((1, 1, 5, 1)) == (2, 2, 2, 2)
    assert rearranged_blocks((1, 2, 4, 1)) == (2, 2, 2, 2)
    assert rearranged_blocks((3, 4, 6, 3)) == (4, 4, 4, 4)


def test_rearranged_blocks_tie_breaking_one_move_at_a_time():
    # the emptiest stages tie (c2 and c5 at 3): the lowest receives
    assert rearranged_blocks((3, 4, 23, 3), moves=1) == (4, 4, 22, 3)
    assert rearranged_blocks((3, 4, 23, 3), moves=2) == (4, 4, 21, 4)
    # the fullest stages tie (c2 and c3 at 5): the highest gives
    assert rearranged_blocks((5, 5, 1, 1), moves=1) == (5, 4, 2, 1)
    assert rearranged_blocks((3, 4, 23, 3), moves=0) == (3, 4, 23, 3)


@pytest.mark.parametrize("blocks", [(3, 4, 23, 3), (1, 1, 5, 1), (5, 5, 1, 2), (9, 1, 1, 1),
                                    (1, 7, 2, 4), (2, 2, 2, 3), (6, 1)])
def test_rearranged_blocks_reaches_the_balance_in_the_fewest_moves(blocks):
    target, moves = balanced_by_hand(blocks)
    assert rearranged_blocks(blocks) == target
    assert rearranged_blocks(blocks, moves) == target
    with pytest.raises(ValueError, match=f"balanced after {moves} moves"):
        rearranged_blocks(blocks, moves + 1)


def test_rearranged_blocks_moves_blocks_up_as_well_as_down():
    """The fullest stage may be the lowest: its blocks move up, and balancing ends."""
    assert rearranged_blocks((6, 1, 1, 1)) == (3, 2, 2, 2)
    assert rearranged_blocks((1, 1, 1, 6)) == (2, 2, 2, 3)


def test_rearranged_blocks_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one block"):
        rearranged_blocks((0, 2, 2, 2))
    with pytest.raises(ValueError, match="two stages"):
        rearranged_blocks((4,))
    with pytest.raises(TypeError, match="ints"):
        rearranged_blocks((2.0, 2, 2, 2))
    with pytest.raises(ValueError, match="moves"):
        rearranged_blocks((2, 2, 2, 2), -1)
    with pytest.raises(TypeError, match="moves"):
        rearranged_blocks((2, 2, 2, 2), 1.0)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_layer_rearrangement_changes_only_the_blocks(block):
    base = ResNetEncoder((1, 1, 5, 1), (8, 16, 32, 64), block=block, stem_channels=12)
    new = layer_rearrangement(base)
    assert new.blocks == (2, 2, 2, 2)
    assert [len(getattr(new, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    assert (new.widths, new.block, new.out_channels, new.strides, new.conv1.out_channels) == (
        base.widths, base.block, base.out_channels, base.strides, 12)
    assert layer_rearrangement(base, moves=1).blocks == (2, 1, 4, 1)


def test_layer_rearrangement_keeps_the_flops_of_the_papers_layout():
    """(3, 4, 23, 3) and (8, 8, 9, 8) bottleneck blocks, equal widths (scaled down 4x)."""
    widths = (16, 32, 64, 128)
    before = count_flops(ResNetEncoder((3, 4, 23, 3), widths, block="bottleneck"), (128, 128))
    after = count_flops(ResNetEncoder((8, 8, 9, 8), widths, block="bottleneck"), (128, 128))
    assert abs(after - before) <= 0.01 * before


def test_layer_rearrangement_keeps_the_flops_of_the_ablation_layout():
    """The ablation's base layout at the cpu profile's widths and size: within 5%."""
    base = ResNetEncoder((1, 1, 5, 1), (32, 64, 128, 256))
    new = layer_rearrangement(base)
    assert new.blocks == (2, 2, 2, 2)
    before, after = count_flops(base, (120, 160)), count_flops(new, (120, 160))
    assert abs(after - before) <= 0.05 * before


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
    up = SubPixelUpsample(2, scale=2, init="default")
    x = torch.randn(1, 2, 3, 4)
    y = up(x, torch.empty(6, 8))
    conv = up.conv(x)  # (1, 2 * 4, 3, 4)
    for c, a, b in itertools.product(range(2), range(2), range(2)):
        # Channel c*r^2 + a*r + b of the convolution is sub-pixel (a, b) of class c.
        assert torch.equal(y[0, c, a::2, b::2], conv[0, c * 4 + a * 2 + b])


def test_bilinear_subpixel_taps():
    assert torch.equal(bilinear_subpixel_taps(2), torch.tensor([[0.25, 0.75, 0.0],
                                                                [0.0, 0.75, 0.25]]))
    for r in (1, 3, 4):
        taps = bilinear_subpixel_taps(r)
        assert taps.shape == (r, 3) and torch.allclose(taps.sum(1), torch.ones(r))
        # the centre of mass of sub-pixel a sits at (a + 0.5) / r - 0.5 input pixels
        centre = (a + 0.5 for a in range(r))
        assert torch.allclose(taps @ torch.tensor([-1.0, 0.0, 1.0]),
                              torch.tensor([c / r - 0.5 for c in centre]))
    with pytest.raises(ValueError, match="scale"):
        bilinear_subpixel_taps(0)


@pytest.mark.parametrize("reference", [(10, 14), (9, 13)], ids=["even", "cropped"])
def test_subpixel_starts_as_the_bilinear_deconvolution(reference):
    """A 3x3 sub-pixel convolution contains the 4x4 stride-2 deconvolution: at the bilinear
    initialisation both give the same map, borders and crop included."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    ref = torch.empty(reference)
    subpixel, deconv = SubPixelUpsample(3, 2)(x, ref), Deconv2x(3)(x, ref)
    assert subpixel.shape == (2, 3, *reference)
    assert torch.allclose(subpixel, deconv, atol=1e-6)
    assert not torch.allclose(SubPixelUpsample(3, 2, init="default")(x, ref), deconv, atol=1e-2)
    with pytest.raises(ValueError, match="init"):
        SubPixelUpsample(3, 2, init="nearest")


def test_subpixel_bilinear_init_at_scale_3_is_bilinear_interpolation():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 5)
    y = SubPixelUpsample(2, 3)(x, torch.empty(12, 15))
    bilinear = F.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False)
    # equal except in the outermost output rows / columns, where interpolate replicates the
    # border and the convolution reads zero padding
    assert torch.allclose(y[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1], atol=1e-6)


@pytest.mark.parametrize("variant", sorted(ECRE_VARIANTS))
def test_ecre_variants(variant):
    ecre = ECRE(3, variant)
    upsample, supervised = ECRE_VARIANTS[variant]
    assert ecre.supervised == supervised
    assert isinstance(ecre.upsample, SubPixelUpsample if upsample == "subpixel" else Deconv2x)
    x, ref = torch.randn(2, 3, 5, 6), torch.empty(9, 12)
    # every design starts as the baseline's bilinear deconvolution: equal initialisation
    assert torch.allclose(ecre(x, ref), Deconv2x(3)(x, ref), atol=1e-6)
    assert ecre(x, ref).shape == (2, 3, 9, 12)
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


def dap_as_one_conv(widen, num_classes, k):
    """The k x k convolution K -> K equal to ``widen`` (1x1, K -> K*k^2) followed by DAP:
    weight[c, d, l, m] = widen.weight[(l*k + m)*K + c, d] / k^2 and the bias the mean of
    the k^2 groups' biases."""
    w = widen.weight[:, :, 0, 0].view(k, k, num_classes, num_classes)  # (l, m, c, d)
    weight = w.permute(2, 3, 0, 1) / k ** 2  # (c, d, l, m)
    bias = widen.bias.view(k * k, num_classes).mean(0)
    return weight, bias


@pytest.mark.parametrize("k", [3, 5])
def test_widening_then_dap_is_one_linear_conv(k):
    torch.manual_seed(0)
    classes = 4
    widen = torch.nn.Conv2d(classes, classes * k * k, 1).double()
    s = torch.randn(2, classes, 9, 11, dtype=torch.float64)
    weight, bias = dap_as_one_conv(widen, classes, k)
    dap = DenselyAdjacentPrediction(k)(widen(s))
    conv = F.conv2d(s, weight, bias, padding=k // 2)
    p = k // 2  # the bias is counted only for votes from inside the map: equal in the interior
    assert torch.allclose(dap[..., p:-p, p:-p], conv[..., p:-p, p:-p])
    assert not torch.allclose(dap, conv)
    with torch.no_grad():
        widen.bias.zero_()
    assert torch.allclose(DenselyAdjacentPrediction(k)(widen(s)),
                          F.conv2d(s, dap_as_one_conv(widen, classes, k)[0], padding=k // 2))


# -- the models -------------------------------------------------------------------------------
ALL_FLAGS = [dict(lr=lr, ss=ss, seb=seb, ecre=ecre, dap=dap) for lr, ss, seb, ecre, dap in
             itertools.product([False, True], [False, *SS_MODES], [False, True],
                               [False, *ECRE_VARIANTS], [False, *DAP_MODES])]


def expected_aux(flags):
    names = {f"ss_c{i}" for i in range(2, 6)} if flags.get("ss") else set()
    if flags.get("ecre") in (True, "ecre", "deconv+supervision"):
        names.add("ecre")
    return names


@pytest.mark.parametrize("flags", ALL_FLAGS,
                         ids=lambda f: "+".join(f"{k}={v}" for k, v in f.items() if v) or "gcn")
def test_exfuse_shapes_aux_names_and_gradients(flags):
    torch.manual_seed(0)
    model = ExFuse(5, small_encoder((1, 1, 3, 1)), kernel_size=5, **flags)
    assert model.encoder.blocks == ((2, 1, 2, 1) if flags["lr"] else (1, 1, 3, 1))
    out = model(torch.randn(2, 3, 123, 157))
    assert out.logits.shape == (2, 5, 123, 157)
    assert set(out.aux) == expected_aux(flags)
    assert all(a.shape == (2, 5, 123, 157) for a in out.aux.values())
    target = torch.randint(0, 5, (2, 123, 157))
    loss = sum(F.cross_entropy(o, target) for o in [out.logits, *out.aux.values()])
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


def test_switched_on_modules_exist():
    model = ExFuse(5, small_encoder((1, 1, 5, 1)), lr=True, ss=True, seb=True, ecre=True,
                   dap=True)
    assert model.encoder.blocks == (2, 2, 2, 2)
    assert sorted(model.ss) == ["c2", "c3", "c4", "c5"]
    assert sorted(model.seb) == ["c2", "c3", "c4"]
    assert [len(model.seb[lv].convs) for lv in ("c2", "c3", "c4")] == [3, 2, 1]
    assert isinstance(model.up["c4"], ECRE) and isinstance(model.up["c3"], Deconv2x)
    assert isinstance(model.dap[1], DenselyAdjacentPrediction)
    assert model.flags == {"lr": True, "ss": "heads", "seb": True, "ecre": "ecre",
                           "dap": "dap"}
    assert model.gcn["c2"].left[0].in_channels == model.encoder.out_channels["c2"]
    features = ExFuse(5, small_encoder(), ss="features")
    assert features.gcn["c2"].left[0].in_channels == features.encoder.out_channels["c2"] + 64
    assert ExFuse(5, small_encoder((1, 1, 5, 1)), lr=True, lr_moves=1).encoder.blocks == (
        2, 1, 4, 1)
    control = ExFuse(5, small_encoder(), dap="conv3x3").dap
    assert isinstance(control, torch.nn.Conv2d) and control.weight.shape == (5, 5, 3, 3)


def test_exfuse_with_everything_off_is_gcn():
    torch.manual_seed(0)
    gcn = GCN(5, small_encoder())
    exfuse = ExFuse(5, small_encoder())
    assert gcn.state_dict().keys() == exfuse.state_dict().keys()
    exfuse.load_state_dict(gcn.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(gcn.eval()(x).logits, exfuse.eval()(x).logits)


def test_bad_switches():
    with pytest.raises(ValueError, match="ecre must be"):
        ExFuse(5, small_encoder(), ecre="pixelshuffle")
    with pytest.raises(ValueError, match=r"ss must be a bool or one of \('heads', 'features'\)"):
        ExFuse(5, small_encoder(), ss="aux")
    with pytest.raises(ValueError, match="dap must be"):
        ExFuse(5, small_encoder(), dap="conv")
    with pytest.raises(TypeError, match="ss must be"):
        ExFuse(5, small_encoder(), ss=1)
    with pytest.raises(TypeError, match="lr must be a bool"):
        ExFuse(5, small_encoder(), lr="yes")
    with pytest.raises(ValueError, match="dap_kernel=5"):
        ExFuse(5, small_encoder(), dap="conv3x3", dap_kernel=5)


# -- semantic supervision and the wiring of the model -----------------------------------------
def test_ss_head_returns_scores_and_its_second_convolution_features():
    torch.manual_seed(0)
    head = SemanticSupervisionHead(6, 5).eval()
    x = torch.randn(2, 6, 9, 11)
    scores, features = head(x)
    assert scores.shape == (2, 5, 9, 11) and features.shape == (2, 64, 9, 11)
    assert torch.equal(features, head.convs[1](head.convs[0](x)))
    assert torch.allclose(scores, F.conv2d(features, head.classifier.weight,
                                           head.classifier.bias), atol=1e-6)
    assert SemanticSupervisionHead(6, 5, channels=4)(x)[1].shape == (2, 4, 9, 11)


def wired(**flags):
    """A model in eval mode, one forward pass, and what its parts received and returned."""
    torch.manual_seed(0)
    model = ExFuse(5, small_encoder(), kernel_size=5, **flags).eval()
    rec = Recorder(encoder=model.encoder, s2=model.refine_fused["c2"],
                   **{f"gcn_{lv}": model.gcn[lv] for lv in model.gcn})
    x = torch.randn(2, 3, 61, 83)
    with torch.no_grad():
        out = model(x)
    return model, rec, x, out


def seb_by_hand(seb, low, highs):
    """x_l * PROD_s Up(Conv3x3(x_s)), from the SEB's weights."""
    out = low
    for conv, high in zip(seb.convs, highs):
        mask = F.conv2d(high, conv.weight, conv.bias, padding=1)
        out = out * F.interpolate(mask, size=low.shape[-2:], mode="bilinear",
                                  align_corners=False)
    return out


@pytest.mark.parametrize("ss", [False, "heads", "features"])
def test_seb_reads_the_raw_higher_levels(ss):
    model, rec, _, _ = wired(seb=True, ss=ss)
    raw = rec.outputs["encoder"]
    levels = ("c2", "c3", "c4", "c5")
    for i, lv in enumerate(levels):
        received = rec.inputs[f"gcn_{lv}"][0]
        expected = raw[lv] if lv == "c5" else seb_by_hand(model.seb[lv], raw[lv],
                                                          [raw[s] for s in levels[i + 1:]])
        assert not torch.allclose(expected, raw[lv]) or lv == "c5"  # SEB changes the level
        if ss == "features":  # the GCN block reads concat(x~_l, f_l), f_l from the raw stage
            expected = torch.cat([expected, model.ss[lv](raw[lv])[1]], 1)
        assert received.shape == expected.shape
        assert torch.allclose(received, expected, atol=1e-5), lv


def test_ss_heads_read_the_raw_stages():
    model, rec, x, out = wired(seb=True, ss="heads")
    raw = rec.outputs["encoder"]
    for lv in ("c2", "c3", "c4", "c5"):
        head = model.ss[lv]
        expected = F.conv2d(head.convs(raw[lv]), head.classifier.weight, head.classifier.bias)
        assert torch.allclose(out.aux[f"ss_{lv}"], upsample_like(expected, x), atol=1e-5), lv
    # in "heads" mode the decoder does not read the heads' features
    assert rec.inputs["gcn_c2"][0].shape[1] == raw["c2"].shape[1]


@pytest.mark.parametrize("ecre", ["ecre", "deconv+supervision"])
def test_ecre_output_is_the_upsampled_top_score_map(ecre):
    model, rec, x, out = wired(ecre=ecre)
    raw = rec.outputs["encoder"]
    top = rec.outputs["gcn_c5"]  # GCN_5(x_5); the top score map is t_5 = BR(GCN_5(x_5))
    t5 = top + model.refine["c5"].residual(top)
    expected = model.up["c4"].upsample(t5, raw["c4"])  # (N, K, H/16, W/16)
    assert expected.shape[-2:] == raw["c4"].shape[-2:]
    assert torch.allclose(out.aux["ecre"], upsample_like(expected, x), atol=1e-5)


def test_logits_are_dap_of_the_top_down_output():
    model, rec, x, out = wired(dap=True, ss="features", seb=True)
    s2 = rec.outputs["s2"]
    widen = model.dap[0]
    expected = dap_by_the_formula(F.conv2d(s2, widen.weight, widen.bias), 5, 3)
    assert torch.allclose(out.logits, upsample_like(expected, x), atol=1e-5)


def test_logits_of_the_dap_control_are_a_conv_of_the_top_down_output():
    model, rec, x, out = wired(dap="conv3x3")
    s2 = rec.outputs["s2"]
    expected = F.conv2d(s2, model.dap.weight, model.dap.bias, padding=1)
    assert torch.allclose(out.logits, upsample_like(expected, x), atol=1e-5)


def test_exfuse_passes_the_head_through():
    torch.manual_seed(0)
    head = torch.nn.Conv2d(5, 5, 1)
    model = ExFuse(5, small_encoder(), kernel_size=5, dap=True, head=lambda c, k: head).eval()
    assert model.head is head
    rec = Recorder(s2=model.refine_fused["c2"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits = model(x).logits
        expected = head(model.dap(rec.outputs["s2"]))  # head(DAP(s_2))
    assert torch.allclose(logits, upsample_like(expected, x), atol=1e-6)
