"""Gated Fully Fusion: the formula and its identities, the released code's in-place order, the
Dense Feature Pyramid's wiring, the pyramid pooling context, and every GFFNet variant."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import test_contract
from fusionlab.encoders import ResNetEncoder
from fusionlab.experiments import MODELS, PROFILES, BuildContext
from fusionlab.experiments.ablations.gff import GFF, MODEL_OPTIONS, OUTPUT_STRIDES, build_gffnet
from fusionlab.experiments.spec import ModelSpec
from fusionlab.losses import SegmentationLoss, cross_entropy
from fusionlab.models.gff import (DenseFeaturePyramid, GatedFullyFusion, GFFNet, PyramidPooling,
                                  concat_fusion, fpn_fusion, sum_fusion)

SIZES = [(13, 17), (7, 9), (4, 5), (4, 5)]  # c2..c5 of a 52 x 68 image at output stride 16


def up(x, like):
    """Bilinear resize written out with torch, independent of fusionlab.layers."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def pyramid(channels=6, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, channels, h, w, generator=g) for h, w in SIZES]


def gff_module(channels=6, gate_channels=1, order="parallel", seed=0):
    torch.manual_seed(seed)
    module = GatedFullyFusion(channels, len(SIZES), gate_channels, order)
    for conv in module.gate_convs:  # gates spread over (0, 1), not all near 0.5
        torch.nn.init.normal_(conv.weight, std=1.0)
        torch.nn.init.normal_(conv.bias, std=1.0)
    return module


def set_gate(module, level, value):
    """Make the gate of ``level`` exactly ``value`` (0 or 1) everywhere."""
    conv = module.gate_convs[level]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(1e4 if value == 1 else -1e4)  # sigmoid saturates to exactly 1 or 0


# -- the formula ----------------------------------------------------------------------------
@pytest.mark.parametrize("gate_channels", [1, 6])
def test_parallel_fusion_is_the_papers_formula(gate_channels):
    module = gff_module(gate_channels=gate_channels)
    levels = pyramid()
    gates = module.gates(levels)
    for g, x in zip(gates, levels):
        assert g.shape == (2, gate_channels, *x.shape[-2:])
        assert g.min() > 0 and g.max() < 1 and g.std() > 0.1
    out = module(levels)
    for l, x in enumerate(levels):
        received = sum(up(gates[i] * levels[i], x) for i in range(len(levels)) if i != l)
        expected = (1 + gates[l]) * x + (1 - gates[l]) * received
        assert out[l].shape == x.shape
        assert torch.allclose(out[l], expected, atol=1e-5)


@pytest.mark.parametrize("order", ["parallel", "sequential"])
def test_all_gates_closed_keep_every_level_and_all_open_double_it(order):
    levels = pyramid()
    module = gff_module(order=order)
    for l in range(len(levels)):
        set_gate(module, l, 0)
    assert all(torch.equal(o, x) for o, x in zip(module(levels), levels))
    for l in range(len(levels)):
        set_gate(module, l, 1)
    assert all(torch.equal(o, 2 * x) for o, x in zip(module(levels), levels))


@pytest.mark.parametrize("sender", range(4))
def test_closing_one_senders_gate_removes_exactly_its_term(sender):
    levels = pyramid()
    module = gff_module()
    gates = module.gates(levels)
    before = module(levels)
    set_gate(module, sender, 0)
    after = module(levels)
    for l, x in enumerate(levels):
        if l == sender:
            continue
        term = (1 - gates[l]) * up(gates[sender] * levels[sender], x)
        assert term.abs().max() > 1e-2  # every level receives from this sender
        assert torch.allclose(before[l] - after[l], term, atol=1e-5)


def test_the_terms_of_the_fusion_sum_to_it_and_name_their_sender():
    torch.manual_seed(0)
    levels = [torch.rand(2, 4, 16 // 2 ** i, 20 // 2 ** i) for i in range(3)]
    gff = GatedFullyFusion(4, 3)
    terms = gff.terms(levels)
    fused = gff(levels)
    gates = gff.gates(levels)
    for l, row in enumerate(terms):
        assert len(row) == 4 and row[1 + l] is None              # own term, then from each level
        assert torch.allclose(row[0], (1 + gates[l]) * levels[l])
        assert torch.allclose(sum(t for t in row if t is not None), fused[l], atol=1e-6)
    assert torch.allclose(terms[0][3], (1 - gates[0]) * F.interpolate(
        gates[2] * levels[2], size=(16, 20), mode="bilinear", align_corners=False), atol=1e-6)
    with pytest.raises(ValueError, match="parallel order only"):
        GatedFullyFusion(4, 3, order="sequential").terms(levels)


def test_sequential_order_is_the_released_in_place_loop_and_differs_from_the_paper():
    levels = pyramid()
    parallel = gff_module(order="parallel")
    sequential = gff_module(order="sequential")
    sequential.load_state_dict(parallel.state_dict())
    gates = sequential.gates(levels)
    xs = [x.clone() for x in levels]
    for l in range(len(xs)):  # lowest level first, overwriting as it goes
        received = 0
        for i in range(len(xs)):
            if i != l:
                received = received + up(gates[i] * xs[i], xs[l])
        xs[l] = (1 + gates[l]) * xs[l] + (1 - gates[l]) * received
    out_seq, out_par = sequential(levels), parallel(levels)
    assert all(torch.allclose(o, x, atol=1e-5) for o, x in zip(out_seq, xs))
    assert torch.allclose(out_seq[0], out_par[0], atol=1e-6)  # the first reads un-fused levels
    for o, p in zip(out_seq[1:], out_par[1:]):
        assert (o - p).abs().max() > 1e-2
    assert all(torch.equal(x, y) for x, y in zip(levels, pyramid()))  # inputs left untouched


def test_gff_bad_input():
    module = gff_module()
    levels = pyramid()
    with pytest.raises(ValueError, match="expected 4 levels, got 3"):
        module(levels[:3])
    with pytest.raises(ValueError, match=r"levels\[2\] must have 6 channels, got shape "
                                         r"\(2, 5, 4, 5\)"):
        module(levels[:2] + [levels[2][:, :5]] + levels[3:])
    with pytest.raises(ValueError, match="batch size"):
        module(levels[:3] + [levels[3][:1]])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        module.gates(levels[:3] + [levels[3][0]])
    with pytest.raises(ValueError, match="gate_channels must be 1 or channels"):
        GatedFullyFusion(6, 4, gate_channels=3)
    with pytest.raises(ValueError, match="order"):
        GatedFullyFusion(6, 4, order="in-place")
    with pytest.raises(ValueError, match="at least 2 levels"):
        GatedFullyFusion(6, 1)


# -- Table 1's basic fusions ---------------------------------------------------------------
def test_basic_fusions_against_direct_computations():
    levels = pyramid()
    (s,) = sum_fusion(levels)
    assert torch.allclose(s, sum(up(x, levels[0]) for x in levels), atol=1e-5)
    (c,) = concat_fusion(levels)
    assert c.shape == (2, 24, *SIZES[0])
    for i, x in enumerate(levels):
        assert torch.allclose(c[:, 6 * i:6 * (i + 1)], up(x, levels[0]), atol=1e-5)
    same = [torch.randn(2, 6, 5, 7) for _ in range(4)]  # one resolution: FPN sums from the top
    for l, p in enumerate(fpn_fusion(same)):
        assert torch.allclose(p, sum(same[l:]), atol=1e-6)
    fpn = fpn_fusion(levels)
    assert torch.allclose(fpn[2], levels[2] + up(levels[3], levels[2]), atol=1e-6)
    with pytest.raises(ValueError, match="must have 6 channels"):
        sum_fusion([levels[0], levels[1][:, :3]])


# -- pyramid pooling and the dense feature pyramid ----------------------------------------
def test_pyramid_pooling_sees_the_whole_image():
    torch.manual_seed(0)
    ppm = PyramidPooling(8, 5).eval()
    x = torch.randn(1, 8, 9, 11)
    assert ppm(x).shape == (1, 5, 9, 11)
    changed = x.clone()
    changed[..., 0, 0] += 10
    far = (ppm(changed) - ppm(x))[..., -1, -1]  # beyond the 3x3 convolution's reach
    assert far.abs().max() > 1e-4
    with torch.no_grad():
        for branch in ppm.branches:
            branch[1].weight.zero_()
    assert torch.equal(ppm(changed)[..., -1, -1], ppm(x)[..., -1, -1])  # only the pooling


def test_pspnet_pools_to_the_papers_bins():
    """PSPNet (Zhao et al., CVPR 2017, Sec. 3.2): pooled grids of 1x1, 2x2, 3x3 and 6x6, each
    branch reduced to 1/4 of the input channels; GFFNet's PPM is that module."""
    torch.manual_seed(0)
    encoder = ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), output_stride=16)
    ppm = GFFNet(5, encoder, fusion=None, dfp=False, channels=16).ppm
    assert ppm.bins == (1, 2, 3, 6)
    x = torch.randn(1, 64, 12, 14)
    pooled = [tuple(branch(x).shape) for branch in ppm.branches]
    assert pooled == [(1, 16, 1, 1), (1, 16, 2, 2), (1, 16, 3, 3), (1, 16, 6, 6)]


def test_pyramid_pooling_errors():
    with pytest.raises(ValueError, match="bins"):
        PyramidPooling(8, 4, bins=(1, 0))
    with pytest.raises(ValueError, match="at least the number of bins"):
        PyramidPooling(3, 4)
    with pytest.raises(ValueError, match=r"expected \(N, 8, H, W\), got \(1, 7, 5, 5\)"):
        PyramidPooling(8, 4)(torch.randn(1, 7, 5, 5))


def test_dense_feature_pyramid_each_level_reads_every_higher_level_and_the_context():
    torch.manual_seed(0)
    c, ctx_c = 6, 5
    dfp = DenseFeaturePyramid(c, 4, ctx_c).eval()
    assert dfp.in_channels == [4 * c + ctx_c, 3 * c + ctx_c, 2 * c + ctx_c, c + ctx_c]
    assert dfp.out_channels == 4 * c + ctx_c
    inputs = {}
    for l, block in enumerate(dfp.blocks):
        block.register_forward_hook(lambda m, args, out, l=l: inputs.__setitem__(l, args[0]))
    levels, context = pyramid(c), torch.randn(2, ctx_c, 3, 4)
    outputs = dfp.pyramid(levels, context)
    for l, x in enumerate(levels):
        assert inputs[l].shape[1] == dfp.in_channels[l]
        expected = torch.cat([x, *(up(d, x) for d in outputs[l + 1:]), up(context, x)], 1)
        assert torch.allclose(inputs[l], expected, atol=1e-6)
        assert outputs[l].shape == x.shape
    out = dfp(levels, context)
    assert torch.allclose(out, torch.cat([*(up(d, levels[0]) for d in outputs),
                                          up(context, levels[0])], 1), atol=1e-6)
    no_context = dfp.pyramid(levels, torch.zeros_like(context))
    for l, (a, b) in enumerate(zip(outputs, no_context)):
        assert (a - b).abs().max() > 1e-3, f"level {l} does not depend on the context"


def test_dense_feature_pyramid_errors():
    dfp = DenseFeaturePyramid(6, 4, 5)
    with pytest.raises(ValueError, match="expected 4 levels, got 3"):
        dfp(pyramid()[:3], torch.randn(2, 5, 3, 4))
    with pytest.raises(ValueError, match=r"context\[0\] must have 5 channels"):
        dfp(pyramid(), torch.randn(2, 6, 3, 4))


# -- GFFNet -------------------------------------------------------------------------------
SMOKE = BuildContext(num_classes=5, profile=PROFILES["smoke"])


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(MODELS, "gff", ModelSpec(build_gffnet, MODEL_OPTIONS))


@pytest.mark.parametrize("label", GFF.variants)
def test_every_variant_keeps_the_model_contract(label, registered):
    test_contract.test_outputs_at_input_size_and_gradients_everywhere(GFF.variants[label])
    model = build_gffnet(SMOKE, **GFF.variants[label].options)
    out = model(torch.randn(2, 3, 123, 157))
    assert list(out.aux) == ["c4"]


def test_bad_images_are_refused(registered):
    test_contract.test_bad_images_are_refused_clearly("gff")


@pytest.mark.parametrize("fusion, dfp, levels", [(None, False, 0), ("sum", False, 1),
                                                 ("concat", True, 1), ("fpn", False, 4),
                                                 ("gff", False, 4), ("gff", True, 4)])
def test_the_head_reads_every_fused_level_and_the_context(fusion, dfp, levels):
    model = build_gffnet(SMOKE, fusion=fusion, dfp=dfp)
    c = SMOKE.profile.channels
    assert model.head.in_channels == c * (levels + 1)
    assert (model.dfp is not None) == dfp and (model.gff is not None) == (fusion == "gff")
    if fusion == "concat":
        assert model.smooth[0][0][0].in_channels == 4 * c  # Table 1's concat: 4 levels of C


def test_gff_model_fuses_the_reduced_levels():
    torch.manual_seed(0)
    model = build_gffnet(SMOKE, dfp=False).eval()
    seen = {}
    model.gff.register_forward_hook(lambda m, args, out: seen.update(inputs=args[0], out=out))
    x = torch.randn(2, 3, 64, 96)
    logits = model(x).logits
    features = model.encoder(x)
    reduced = model.reduce_levels(features)
    assert all(torch.equal(a, b) for a, b in zip(seen["inputs"], reduced))
    smoothed = [s(f) for s, f in zip(model.smooth, seen["out"])]
    expected = model.head(torch.cat([*(up(f, smoothed[0]) for f in smoothed),
                                     up(model.ppm(features["c5"]), smoothed[0])], 1))
    assert torch.allclose(logits, up(expected, x), atol=1e-5)


def test_pspnet_baseline_predicts_from_the_context():
    torch.manual_seed(0)
    model = build_gffnet(SMOKE, fusion="none", dfp=False).eval()
    x = torch.randn(1, 3, 64, 96)
    features = model.encoder(x)
    assert torch.allclose(model(x).logits, up(model.head(model.ppm(features["c5"])), x),
                          atol=1e-5)
    with pytest.raises(ValueError, match="no fused levels"):
        model.reduce_levels(features)


def test_auxiliary_loss_on_c4_weighs_0_4():
    torch.manual_seed(0)
    model = build_gffnet(SMOKE)
    out = model(torch.randn(2, 3, 48, 64))
    target = torch.randint(0, 5, (2, 48, 64))
    total, parts = SegmentationLoss.for_model(model, aux_weight=1.0)(out, target)
    expected = cross_entropy(out.logits, target) + 0.4 * cross_entropy(out.aux["c4"], target)
    assert torch.allclose(total, expected)
    assert sorted(parts) == ["aux/c4", "main"]


def test_output_stride_per_profile_and_gate_width_option():
    strides = {name: build_gffnet(dataclasses.replace(SMOKE, profile=PROFILES[name]))
               .encoder.strides for name in ("cpu", "gpu")}
    assert OUTPUT_STRIDES["cpu"] == 16 and OUTPUT_STRIDES["gpu"] == 8
    assert strides["cpu"] == {"c2": 4, "c3": 8, "c4": 16, "c5": 16}  # only c5 dilated
    assert strides["gpu"] == {"c2": 4, "c3": 8, "c4": 8, "c5": 8}  # the paper's layout
    assert build_gffnet(SMOKE, output_stride=32).encoder.strides["c5"] == 32
    wide = build_gffnet(SMOKE, gate_channels="C")
    assert wide.gff.gate_channels == SMOKE.profile.channels
    with pytest.raises(ValueError, match="int or 'C'"):
        build_gffnet(SMOKE, gate_channels="c")
    custom = dataclasses.replace(SMOKE, profile=dataclasses.replace(SMOKE.profile, name="mine"))
    with pytest.raises(ValueError, match="no default output stride"):
        build_gffnet(custom)


def test_gffnet_errors():
    encoder = ResNetEncoder(widths=(8, 16, 32, 64), output_stride=16)
    with pytest.raises(ValueError, match="fusion must be one of"):
        GFFNet(5, encoder, fusion="gated")
    with pytest.raises(ValueError, match="dfp=True needs a fusion"):
        GFFNet(5, encoder, fusion=None, dfp=True)
    with pytest.raises(ValueError, match="apply to fusion='gff' only"):
        GFFNet(5, encoder, fusion="sum", dfp=False, order="sequential")
    with pytest.raises(ValueError, match="apply to fusion='gff' only"):
        GFFNet(5, encoder, fusion="fpn", gate_channels=16)
    with pytest.raises(TypeError, match="dfp must be a bool"):
        GFFNet(5, encoder, dfp="yes")
    with pytest.raises(ValueError, match="gate_channels must be 1 or channels"):
        GFFNet(5, encoder, gate_channels=3, channels=16)
