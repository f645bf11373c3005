"""DFN: the RRB and CAB against direct computations, the Smooth and Border Networks' wiring,
every flag combination of the model, the border loss term and the official code's focal loss."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import test_contract
from fusionlab.boundaries import border_target
from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.experiments import MODELS, PROFILES, BuildContext
from fusionlab.experiments.ablations.dfn import DFN_OPTIONS, EXPERIMENT, LAMBDAS, build_dfn
from fusionlab.experiments.spec import ModelSpec
from fusionlab.layers import upsample_like
from fusionlab.losses import SegmentationLoss, cross_entropy, focal_loss, official_focal_loss
from fusionlab.models.dfn import (DFN, BorderLoss, BorderNetwork, ChannelAttentionBlock,
                                  GlobalContext, RefinementResidualBlock, SmoothNetwork)

IN_CHANNELS = {"c2": 8, "c3": 16, "c4": 32, "c5": 64}


def small_encoder():
    return ResNetEncoder(blocks=(1, 1, 1, 1), widths=tuple(IN_CHANNELS.values()))


def features(n=2, size=(32, 48), seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return {lv: torch.randn(n, c, math.ceil(h / 2 ** (i + 2)), math.ceil(w / 2 ** (i + 2)),
                            generator=g)
            for i, (lv, c) in enumerate(IN_CHANNELS.items())}


def randomise_batch_norms(module):
    """Non-trivial affine parameters and running statistics, so eval-mode BN is no identity."""
    g = torch.Generator().manual_seed(1)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            c = bn.num_features
            bn.weight.data = torch.rand(c, generator=g) + 0.5
            bn.bias.data = torch.randn(c, generator=g)
            bn.running_mean = torch.randn(c, generator=g)
            bn.running_var = torch.rand(c, generator=g) + 0.5


# -- refinement residual block ------------------------------------------------------------
def test_rrb_against_direct_computation():
    torch.manual_seed(0)
    rrb = RefinementResidualBlock(3, 5)
    randomise_batch_norms(rrb)
    rrb.eval()
    x = torch.randn(2, 3, 7, 9)
    conv_a, bn = rrb.residual[0][0], rrb.residual[0][1]
    conv_b = rrb.residual[1]
    x1 = F.conv2d(x, rrb.unify.weight)  # no bias, no BN
    t = F.conv2d(x1, conv_a.weight, padding=1)
    t = (t - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    t = torch.clamp(t * bn.weight[:, None, None] + bn.bias[:, None, None], min=0)
    expected = torch.clamp(x1 + F.conv2d(t, conv_b.weight, padding=1), min=0)
    assert rrb(x).shape == (2, 5, 7, 9)
    assert torch.allclose(rrb(x), expected, atol=1e-5)
    assert rrb.unify.bias is None and conv_b.bias is None


# -- channel attention block --------------------------------------------------------------
def cab_inputs(c=4):
    """low (2, c, 6, 10) and high (2, c, 3, 5), with an offset per image and channel so that
    the pooled vectors differ and the hidden ReLU is not all zero."""
    g = torch.Generator().manual_seed(3)
    offsets = 2 * torch.randn(2, 2 * c, 1, 1, generator=g)
    return (torch.randn(2, c, 6, 10, generator=g) + offsets[:, :c],
            torch.randn(2, c, 3, 5, generator=g) + offsets[:, c:])


def active_cab(c=4):
    """A CAB whose hidden ReLU passes most entries (bias 1), so checks see both layers."""
    torch.manual_seed(0)
    cab = ChannelAttentionBlock(c)
    with torch.no_grad():
        cab.reduce.bias.fill_(1.0)
    return cab


def test_cab_against_direct_computation():
    cab = active_cab()
    low, high = cab_inputs()
    up = F.interpolate(high, size=(6, 10), mode="bilinear", align_corners=False)
    pooled = torch.cat([low, up], 1).mean(dim=(2, 3))  # (N, 2C)
    hidden = torch.clamp(pooled @ cab.reduce.weight[:, :, 0, 0].T + cab.reduce.bias, min=0)
    assert (hidden > 0).sum() >= 4  # the check below sees the first convolution
    w = torch.sigmoid(hidden @ cab.expand.weight[:, :, 0, 0].T + cab.expand.bias)  # (N, C)
    assert torch.allclose(cab.attention(low, high), w, atol=1e-6)
    assert torch.allclose(cab(low, high), low * w[:, :, None, None] + up, atol=1e-6)


@pytest.mark.parametrize("forced, expected", [
    (math.inf, lambda low, up: low + up),
    (-math.inf, lambda low, up: up),
])
def test_cab_with_attention_forced_to_one_or_zero(forced, expected):
    cab = ChannelAttentionBlock(4)
    with torch.no_grad():
        cab.expand.weight.zero_()
        cab.expand.bias.fill_(forced)  # sigmoid(+inf) = 1, sigmoid(-inf) = 0 exactly
    low, high = cab_inputs()
    up = upsample_like(high, low)
    assert torch.equal(cab.attention(low, high), torch.full((2, 4), float(forced > 0)))
    assert torch.equal(cab(low, high), expected(low, up))


def test_cab_attention_is_per_channel_and_image_broadcast_over_positions():
    cab = active_cab()
    low, high = cab_inputs()
    w = cab.attention(low, high)
    assert w.shape == (2, 4)
    assert not torch.allclose(w[0], w[1])  # one vector per image
    out = cab(low, high)
    ratio = (out - upsample_like(high, low)) / low  # (N, C, H, W): w at every position
    assert torch.allclose(ratio, w[:, :, None, None].expand_as(ratio), atol=1e-4)
    # only the global averages matter: shuffling the positions of both inputs keeps w
    high_full = upsample_like(high, low)
    perm = torch.randperm(60)
    shuffle = lambda x: x.flatten(2)[:, :, perm].reshape(x.shape)  # noqa: E731
    assert torch.allclose(cab.attention(shuffle(low), shuffle(high_full)), w, atol=1e-6)


def test_cab_refuses_wrong_channels():
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\).*\(2, 3, 6, 10\)"):
        ChannelAttentionBlock(4)(torch.zeros(2, 3, 6, 10), torch.zeros(2, 4, 3, 5))


# -- global context, Smooth Network, Border Network ----------------------------------------
def test_global_context_is_a_pooled_vector_broadcast_by_the_fusion():
    torch.manual_seed(0)
    gc = GlobalContext(6, 4)
    x = torch.randn(2, 6, 5, 7)
    expected = torch.clamp(x.mean(dim=(2, 3)) @ gc.conv.weight[:, :, 0, 0].T + gc.conv.bias,
                           min=0)
    g = gc(x)
    assert g.shape == (2, 4, 1, 1)
    assert torch.allclose(g[:, :, 0, 0], expected, atol=1e-6)
    assert torch.allclose(upsample_like(g, x), g.expand(2, 4, 5, 7), atol=1e-7)  # a constant


@pytest.mark.parametrize("gp, cab", list(itertools.product([True, False], repeat=2)))
@pytest.mark.parametrize("rrb", [True, False])
def test_smooth_network_wiring(rrb, gp, cab):
    """s_l = post_l(fuse_l(pre_l(c_l), h_l)), h_5 = GlobalContext(c5), h_l = s_{l+1}: the
    second RRB's output goes up; recomputed from the submodules."""
    torch.manual_seed(0)
    net = SmoothNetwork(IN_CHANNELS, 8, rrb=rrb, gp=gp, cab=cab).eval()
    f = features()
    out, attentions = net.run(f)
    high = net.global_context(f["c5"]) if gp else None
    expected_attention = {}
    for lv in reversed(LEVELS):
        x = net.pre[lv](f[lv])
        if high is not None and cab:
            expected_attention[lv] = net.cabs[lv].attention(x, high)
            x = net.cabs[lv](x, high)
        elif high is not None:
            x = x + upsample_like(high, x)
        high = net.post[lv](x)
        assert torch.allclose(out[lv], high, atol=1e-6), lv
        assert out[lv].shape == (2, 8, *f[lv].shape[-2:])
    assert sorted(attentions) == sorted(expected_attention)
    for lv, w in attentions.items():
        assert w.shape == (2, 8) and torch.allclose(w, expected_attention[lv])
    assert isinstance(net.pre["c2"], RefinementResidualBlock) == rrb
    assert (net.global_context is not None) == gp
    assert (net.cabs is not None) == cab
    if cab:  # stage c5 has a higher feature only with the global context
        assert sorted(net.cabs) == sorted(LEVELS if gp else LEVELS[:-1])


def test_border_network_is_cumulative_bottom_up():
    torch.manual_seed(0)
    net = BorderNetwork(IN_CHANNELS, 6).eval()
    f = {lv: x.requires_grad_() for lv, x in features().items()}
    out = net(f)
    b = net.pre["c2"](f["c2"])
    for lv in LEVELS:
        if lv != "c2":
            b = net.post[lv](b + upsample_like(net.pre[lv](f[lv]), b))
        assert out[lv].shape == (2, 1, *f["c2"].shape[-2:])
        assert torch.allclose(out[lv], net.heads[lv](b), atol=1e-6), lv
    # border_c3 sees c2 and c3 only
    grads = torch.autograd.grad(out["c3"].sum(), [f[lv] for lv in LEVELS], allow_unused=True)
    assert [g is not None and bool(g.any()) for g in grads] == [True, True, False, False]


# -- the model: every flag combination -------------------------------------------------------
FLAGS = ("rrb", "gp", "cab", "deep_supervision", "border")
COMBINATIONS = [dict(zip(FLAGS, values))
                for values in itertools.product([False, True], repeat=len(FLAGS))]


def expected_aux_names(flags):
    stages = [f"stage_{lv}" for lv in LEVELS[1:]] if flags["deep_supervision"] else []
    borders = [f"border_{lv}" for lv in LEVELS] if flags["border"] else []
    return sorted(stages + borders)


@pytest.mark.parametrize("flags", COMBINATIONS,
                         ids=["-".join(k for k, v in c.items() if v) or "baseline"
                              for c in COMBINATIONS])
def test_every_flag_combination(flags):
    torch.manual_seed(0)
    model = DFN(5, small_encoder(), channels=8, border_channels=4, **flags)
    assert model.flags == flags
    out = model(torch.randn(2, 3, 123, 157))
    assert out.logits.shape == (2, 5, 123, 157)
    assert sorted(out.aux) == expected_aux_names(flags)
    for name, aux in out.aux.items():
        assert aux.shape == (2, 1 if name.startswith("border") else 5, 123, 157), name
    again = model(torch.randn(1, 3, 64, 96))
    assert sorted(again.aux) == sorted(out.aux)
    assert sorted(model.aux_losses()) == sorted(out.aux)
    loss = out.logits.square().mean() + sum(a.square().mean() for a in out.aux.values())
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []
    # the switched-off modules are absent, not merely unused
    modules = {type(m) for m in model.modules()}
    assert (ChannelAttentionBlock in modules) == flags["cab"]
    assert (GlobalContext in modules) == flags["gp"]
    assert (BorderNetwork in modules) == flags["border"]
    assert (RefinementResidualBlock in modules) == (flags["rrb"] or flags["border"])


def test_logits_are_the_c2_stage_head():
    torch.manual_seed(0)
    model = DFN(5, small_encoder(), channels=8, border_channels=4).eval()
    images = torch.randn(2, 3, 61, 83)
    out = model(images)
    smoothed = model.smooth(model.encoder(images))
    assert torch.allclose(out.logits, upsample_like(model.heads["c2"](smoothed["c2"]), images),
                          atol=1e-5)
    for lv in LEVELS[1:]:
        assert torch.allclose(out.aux[f"stage_{lv}"],
                              upsample_like(model.heads[lv](smoothed[lv]), images), atol=1e-5)


def test_bad_arguments():
    enc = small_encoder()
    with pytest.raises(TypeError, match="cab"):
        DFN(5, enc, cab="yes")
    with pytest.raises(TypeError, match="border"):
        DFN(5, enc, border=1)
    with pytest.raises(ValueError, match="-0.5"):
        DFN(5, enc, border_weight=-0.5)
    with pytest.raises(TypeError, match="border_weight"):
        DFN(5, enc, border_weight="0.1")
    with pytest.raises(ValueError, match="border=False"):
        DFN(5, enc, border=False, border_weight=0.5)
    with pytest.raises(ValueError, match="official"):
        DFN(5, enc, focal="buggy")
    with pytest.raises(ValueError, match="missing"):
        SmoothNetwork({"c2": 8}, 4)
    with pytest.raises(ValueError, match="focal"):
        BorderLoss("buggy")


# -- the loss: stage heads and border heads --------------------------------------------------
def labels_with_ignore(n=2, size=(40, 56), classes=5, seed=0):
    """Blocky label maps (regions of 8 x 8 pixels) with an ignored band."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    coarse = torch.randint(0, classes, (n, h // 8, w // 8), generator=g)
    labels = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)  # (N, H, W)
    labels[:, :, -6:] = 255
    return labels


def test_border_target_of_the_loss_is_border_target_of_the_labels():
    labels = labels_with_ignore()
    target = BorderLoss().target(labels)
    expected = border_target(labels).long()
    expected[labels == 255] = 255
    assert torch.equal(target, expected)
    assert set(target.unique().tolist()) == {0, 1, 255}
    logits = torch.randn(2, 1, *labels.shape[1:])
    assert torch.equal(BorderLoss()(logits, labels), focal_loss(logits, expected))
    assert torch.equal(BorderLoss("official")(logits, labels),
                       official_focal_loss(logits, expected))


@pytest.mark.parametrize("border_weight, focal", [(0.1, "correct"), (0.5, "correct"),
                                                  (1.0, "official")])
def test_training_loss_weights_stage_and_border_heads(border_weight, focal):
    torch.manual_seed(0)
    model = DFN(5, small_encoder(), channels=8, border_channels=4,
                border_weight=border_weight, focal=focal)
    labels = labels_with_ignore()
    out = model(torch.randn(2, 3, *labels.shape[1:]))
    total, parts = SegmentationLoss.for_model(model)(out, labels)
    border = border_target(labels).long().masked_fill(labels == 255, 255)
    fl = focal_loss if focal == "correct" else official_focal_loss
    expected = sum(cross_entropy(logits, labels) for logits in
                   [out.logits] + [out.aux[f"stage_{lv}"] for lv in LEVELS[1:]])
    expected = expected + border_weight * sum(fl(out.aux[f"border_{lv}"], border)
                                              for lv in LEVELS)
    assert torch.allclose(total, expected, atol=1e-6)
    assert sorted(parts) == sorted(["main"] + [f"aux/{n}" for n in out.aux])
    # the border loss reaches the Border Network, and nothing else of the decoder
    sum(fl(out.aux[f"border_{lv}"], border) for lv in LEVELS).backward()
    assert all(p.grad is not None and p.grad.any() for p in model.border.parameters())
    assert all(p.grad is None for p in model.smooth.parameters())


# -- the official focal loss -----------------------------------------------------------------
def official_by_hand(x: float, t: int, alpha=0.25, gamma=2.0) -> float:
    """TorchSeg's SigmoidFocalLoss for one pixel, written out with the math module."""
    p = 1 / (1 + math.exp(-x))
    pos = (1 - p) ** gamma * (p - p * t)
    neg = p ** gamma * math.log(1 + math.exp(-p))
    return -(alpha * pos + (1 - alpha) * neg)


GRID = torch.linspace(-6, 6, 25)


@pytest.mark.parametrize("t", [0, 1])
def test_official_focal_loss_against_hand_values(t):
    for x in GRID.tolist():
        loss = official_focal_loss(torch.tensor([[[x]]]), torch.tensor([[[t]]]))
        assert loss.item() == pytest.approx(official_by_hand(x, t), rel=1e-5, abs=1e-9)


def test_official_focal_loss_is_never_positive_and_spans_the_reported_range():
    values = {t: [official_focal_loss(torch.tensor([[[x]]]), torch.tensor([[[t]]])).item()
                  for x in GRID.tolist()] for t in (0, 1)}
    assert all(v <= 0 for vs in values.values() for v in vs)
    everything = values[0] + values[1]
    # FORMULAS.md: from -0.0006 to -0.234 over logits -6..6
    assert max(everything) > -0.0007 and min(everything) == pytest.approx(-0.234, abs=5e-4)


@pytest.mark.parametrize("t", [0, 1])
def test_official_gradient_pushes_every_pixel_towards_border(t):
    x = GRID.clone().reshape(1, 1, -1).requires_grad_()
    official_focal_loss(x, torch.full((1, 1, 25), t)).backward()
    assert (x.grad < 0).all()  # descent raises every logit, whatever the target
    # the focal loss the paper describes: positive, its gradient follows the target
    x.grad = None
    loss = focal_loss(x, torch.full((1, 1, 25), t))
    loss.backward()
    assert loss.item() > 0
    assert ((x.grad > 0) if t == 0 else (x.grad < 0)).all()


@pytest.mark.parametrize("t", [0, 1])
def test_focal_loss_is_positive_and_falls_as_p_t_rises_official_does_not(t):
    sign = 1 if t == 1 else -1  # p_t rises with sign * logit
    fl = [focal_loss(torch.tensor([[[sign * x]]]), torch.tensor([[[t]]])).item()
          for x in GRID.tolist()]
    assert all(v > 0 for v in fl) and all(a > b for a, b in zip(fl, fl[1:]))
    official = [official_focal_loss(torch.tensor([[[sign * x]]]), torch.tensor([[[t]]])).item()
                for x in GRID.tolist()]
    falls = all(a > b for a, b in zip(official, official[1:]))
    assert falls == (t == 1)  # for target 0 it rises as the prediction improves


def test_official_focal_loss_counts_ignored_pixels_in_the_mean():
    x = torch.tensor([[[0.5, -1.0, 3.0]]])
    loss = official_focal_loss(x, torch.tensor([[[1, 0, 255]]]))
    expected = (official_by_hand(0.5, 1) + official_by_hand(-1.0, 0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# -- the experiment --------------------------------------------------------------------------
def test_ladder_adds_one_module_per_step_and_sweep_changes_only_lambda():
    v = EXPERIMENT.variants
    ladder = ["baseline", "+RRB", "+GP", "+CAB", "+DS (Smooth Network)", "DFN"]
    for a, b in zip(ladder, ladder[1:]):
        added = set(v[b].options) - set(v[a].options)
        assert len(added) == 1 and v[b].options == {**v[a].options, **{k: True for k in added}}
    for w in LAMBDAS:
        assert v[f"DFN, lambda {w}"].options == {**v["DFN"].options, "border_weight": w}
    assert v["DFN, official focal loss"].options == {**v["DFN"].options, "focal": "official"}
    assert EXPERIMENT.headline == ("baseline", "DFN")
    # the paper's gains add up from its baseline (72.86) to DFN (79.67)
    total = sum(EXPERIMENT.paper[label].value for label in ladder[1:])
    assert total == pytest.approx(79.67 - 72.86, abs=1e-9)


def test_builder_options_and_text_lambda():
    ctx = BuildContext(num_classes=5, profile=PROFILES["smoke"])
    model = build_dfn(ctx, rrb=True, border=True, border_weight="0.5")
    assert model.border_weight == 0.5 and model.flags["rrb"] and not model.flags["cab"]
    assert set(DFN_OPTIONS) == {"rrb", "gp", "cab", "ds", "border", "border_weight", "focal"}
    with pytest.raises(ValueError, match="'heavy'"):
        build_dfn(ctx, border=True, border_weight="heavy")


@pytest.fixture
def dfn_registered(monkeypatch):
    monkeypatch.setitem(MODELS, "dfn", ModelSpec(build_dfn, DFN_OPTIONS))


# one variant per architecture: the sweep and the official loss change only the loss
ARCHITECTURES = {label: v for label, v in EXPERIMENT.variants.items()
                 if not {"border_weight", "focal"} & set(v.options)}


@pytest.mark.parametrize("variant", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
def test_experiment_variants_keep_the_shared_contract(dfn_registered, variant):
    test_contract.test_outputs_at_input_size_and_gradients_everywhere(variant)


def test_dfn_refuses_bad_images(dfn_registered):
    test_contract.test_bad_images_are_refused_clearly("dfn")
