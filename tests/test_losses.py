import math
from functools import partial

import pytest
import torch

from fusionlab.losses import (AuxLoss, SegmentationLoss, cross_entropy, focal_loss,
                              official_focal_loss)
from fusionlab.models import SegOutput


def focal_by_hand(x: float, y: int, alpha=0.25, gamma=2.0) -> float:
    """FL = -alpha_t (1 - p_t)^gamma log p_t, written out with the math module."""
    p = 1 / (1 + math.exp(-x))
    p_t, alpha_t = (p, alpha) if y == 1 else (1 - p, 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * math.log(p_t)


LOGITS = [-6.0, -2.0, -0.5, 0.0, 0.5, 2.0, 6.0]


@pytest.mark.parametrize("y", [0, 1])
@pytest.mark.parametrize("x", LOGITS)
def test_focal_loss_against_hand_values(x, y):
    loss = focal_loss(torch.tensor([[[x]]]), torch.tensor([[[y]]]))
    assert loss.item() == pytest.approx(focal_by_hand(x, y), rel=1e-5)
    assert loss.item() > 0


def test_focal_loss_range_of_dfn_reference():
    # FORMULAS.md, DFN: gamma 2, alpha 0.25 over logits -6..6 runs from 0 to 4.48 for
    # target 0 and from 1.49 to 0 for target 1
    assert focal_loss(torch.tensor([[[6.0]]]), torch.tensor([[[0]]])).item() == \
        pytest.approx(4.48, abs=0.005)
    assert focal_loss(torch.tensor([[[-6.0]]]), torch.tensor([[[1]]])).item() == \
        pytest.approx(1.49, abs=0.01)


@pytest.mark.parametrize("y", [0, 1])
def test_focal_loss_falls_as_the_prediction_improves(y):
    x = torch.linspace(-8, 8, 33)
    sign = 1 if y == 1 else -1  # the better prediction has a larger p_t
    losses = [focal_loss(torch.tensor([[[sign * v]]]), torch.tensor([[[y]]])).item()
              for v in x.tolist()]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert all(v > 0 for v in losses)


def test_focal_loss_gamma_zero_is_alpha_weighted_bce():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4, 5) * 3
    y = torch.randint(0, 2, (2, 4, 5))
    alpha_t = torch.where(y == 1, 0.25, 0.75)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x[:, 0], y.float(),
                                                               reduction="none")
    expected = (alpha_t * bce).mean()
    assert torch.allclose(focal_loss(x, y, gamma=0.0), expected, atol=1e-6)


def test_focal_loss_ignores_pixels_in_sum_and_count():
    x = torch.tensor([[[0.5, -1.0, 30.0]]])
    y = torch.tensor([[[1, 0, 255]]])
    expected = (focal_by_hand(0.5, 1) + focal_by_hand(-1.0, 0)) / 2
    assert focal_loss(x, y).item() == pytest.approx(expected, rel=1e-5)
    nothing = torch.zeros(1, 1, 2, 2, requires_grad=True)
    loss = focal_loss(nothing, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0 and nothing.grad is not None


def test_focal_loss_gradient_sign_and_stability():
    x = torch.tensor([[[-50.0, -2.0, 0.0, 2.0, 50.0]]], requires_grad=True)
    focal_loss(x, torch.ones(1, 1, 5, dtype=torch.long)).backward()
    assert (x.grad[0, 0, :4] < 0).all()  # target 1: raising the logit lowers the loss
    assert torch.isfinite(x.grad).all()
    x.grad = None
    focal_loss(x, torch.zeros(1, 1, 5, dtype=torch.long)).backward()
    assert (x.grad[0, 0, 1:] > 0).all()  # target 0: raising the logit raises the loss
    # logit 50 for target 0: log(1 - sigmoid(50)) would be log(0) in float32; the loss is
    # -0.75 * (1 - e^-50)^2 * log(sigmoid(-50)) = 0.75 * (50 + log(1 + e^-50)) ~ 37.5
    far = focal_loss(torch.tensor([[[50.0]]]), torch.tensor([[[0]]]))
    assert far.item() == pytest.approx(0.75 * 50, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_loss_gradient_is_finite_for_saturated_logits(gamma):
    # (1 - p_t)^gamma has an infinite derivative at p_t = 1 for gamma < 1 if taken literally
    x = torch.tensor([[[100.0, -100.0, 0.0]]], requires_grad=True)
    loss = focal_loss(x, torch.tensor([[[1, 0, 1]]]), gamma=gamma)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad[0, 0, 2] < 0
    assert loss.item() == pytest.approx(focal_by_hand(0.0, 1, gamma=gamma) / 3, rel=1e-5)


@pytest.mark.parametrize("loss_fn", [focal_loss, official_focal_loss],
                         ids=["focal_loss", "official_focal_loss"])
def test_focal_loss_bad_input(loss_fn):
    with pytest.raises(ValueError, match=r"one border channel.*\(1, 2, 3, 3\)"):
        loss_fn(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[2\]"):
        loss_fn(torch.zeros(1, 3, 3), torch.full((1, 3, 3), 2))
    with pytest.raises(ValueError, match=r"\(1, 3, 3\).*\(1, 3, 4\)"):
        loss_fn(torch.zeros(1, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="float32"):
        loss_fn(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))


def test_focal_loss_refuses_alpha_outside_0_1():
    with pytest.raises(ValueError, match="alpha=1.5"):
        focal_loss(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long), alpha=1.5)


def test_cross_entropy_refuses_float_targets():
    with pytest.raises(TypeError, match="float32"):
        cross_entropy(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2))


def toy_output(channels=None):
    torch.manual_seed(0)
    channels = channels or {"c3": 4, "c4": 4}
    return SegOutput(torch.randn(2, 4, 5, 5),
                     {name: torch.randn(2, k, 5, 5) for name, k in channels.items()})


def test_one_weight_for_every_aux_output():
    out, target = toy_output(), torch.randint(0, 4, (2, 5, 5))
    total, parts = SegmentationLoss(0.4)(out, target)
    expected = (cross_entropy(out.logits, target) + 0.4 * cross_entropy(out.aux["c3"], target)
                + 0.4 * cross_entropy(out.aux["c4"], target))
    assert torch.allclose(total, expected)
    assert set(parts) == {"main", "aux/c3", "aux/c4"}
    assert torch.allclose(parts["aux/c4"], cross_entropy(out.aux["c4"], target))


def border_of(labels):
    """A stand-in for a border target: 1 where the label differs from its right neighbour."""
    edge = torch.zeros_like(labels)
    edge[..., :-1] = (labels[..., 1:] != labels[..., :-1]).long()
    return edge


def border_focal(logits, labels):
    return focal_loss(logits, border_of(labels))


def test_per_output_weights_and_loss_functions():
    """DFN's layout: cross-entropy stage heads of weight 1 and focal-loss border heads of 0.1."""
    out = toy_output({"stage_c3": 4, "border_c3": 1, "border_c4": 1})
    target = torch.randint(0, 4, (2, 5, 5))
    loss = SegmentationLoss({"stage_c3": AuxLoss(1.0), "border_c3": AuxLoss(0.1, border_focal),
                             "border_c4": (0.1, border_focal)})
    total, parts = loss(out, target)
    expected = (cross_entropy(out.logits, target) + cross_entropy(out.aux["stage_c3"], target)
                + 0.1 * focal_loss(out.aux["border_c3"], border_of(target))
                + 0.1 * focal_loss(out.aux["border_c4"], border_of(target)))
    assert torch.allclose(total, expected)
    assert set(parts) == {"main", "aux/stage_c3", "aux/border_c3", "aux/border_c4"}


def test_weight_zero_leaves_an_output_out():
    out, target = toy_output(), torch.randint(0, 4, (2, 5, 5))
    total, parts = SegmentationLoss({"c3": 0.5, "c4": 0.0})(out, target)
    assert "aux/c4" not in parts
    expected = cross_entropy(out.logits, target) + 0.5 * cross_entropy(out.aux["c3"], target)
    assert torch.allclose(total, expected)


def test_unmatched_names_are_errors_not_silently_dropped():
    out, target = toy_output(), torch.randint(0, 4, (2, 5, 5))
    with pytest.raises(ValueError, match=r"without a loss \['c4'\]"):
        SegmentationLoss({"c3": 0.5})(out, target)
    with pytest.raises(ValueError, match=r"without an output \['c5'\]"):
        SegmentationLoss({"c3": 0.5, "c4": 0.5, "c5": 1.0})(out, target)


def test_bad_weights():
    with pytest.raises(ValueError, match="'aux'.*-1"):
        SegmentationLoss(-1)
    with pytest.raises(ValueError, match="'c3'.*nan"):
        SegmentationLoss({"c3": float("nan")})
    with pytest.raises(TypeError, match="'c3'"):
        SegmentationLoss({"c3": "0.4"})


class Declares(torch.nn.Module):
    def aux_losses(self):
        return {"border": AuxLoss(0.1, partial(focal_loss, gamma=0.0))}


def test_model_declares_its_aux_losses():
    out = toy_output({"border": 1})
    target = torch.randint(0, 2, (2, 5, 5))
    total, _ = SegmentationLoss.for_model(Declares(), aux_weight=0.4)(out, target)
    expected = cross_entropy(out.logits, target) + 0.1 * focal_loss(out.aux["border"], target,
                                                                     gamma=0.0)
    assert torch.allclose(total, expected)
    plain = SegmentationLoss.for_model(torch.nn.Module(), aux_weight=0.25)
    out = toy_output()
    total, _ = plain(out, target)
    expected = (cross_entropy(out.logits, target) + 0.25 * cross_entropy(out.aux["c3"], target)
                + 0.25 * cross_entropy(out.aux["c4"], target))
    assert torch.allclose(total, expected)


def test_terms_are_float32_under_low_precision_logits():
    out, target = toy_output(), torch.randint(0, 4, (2, 5, 5))
    low = SegOutput(out.logits.bfloat16(), {k: v.bfloat16() for k, v in out.aux.items()})
    total, _ = SegmentationLoss(0.4)(low, target)
    assert total.dtype == torch.float32
    reference, _ = SegmentationLoss(0.4)(
        SegOutput(low.logits.float(), {k: v.float() for k, v in low.aux.items()}), target)
    assert torch.equal(total, reference)


def test_cross_entropy_ignores_void_pixels():
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [255, 2]]])
    expected = -torch.log_softmax(logits, 1)[0, [0, 1, 2], [0, 0, 1], [0, 1, 1]].mean()
    assert torch.allclose(cross_entropy(logits, target), expected)


def test_cross_entropy_all_ignored_is_zero_with_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None


def test_cross_entropy_names_bad_labels_and_shapes():
    with pytest.raises(ValueError, match=r"0\.\.2.*7"):
        cross_entropy(torch.randn(1, 3, 2, 2), torch.tensor([[[0, 7], [1, 2]]]))
    with pytest.raises(ValueError, match=r"\(1, 3, 2, 2\).*\(1, 3, 3\)"):
        cross_entropy(torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))



def test_the_loss_response_is_each_logits_loss_and_gradient():
    from fusionlab.losses import loss_response
    logits = torch.tensor([-2.0, 0.0, 3.0])
    bce = partial(focal_loss, alpha=0.5, gamma=0.0)          # 0.5 x binary cross-entropy
    values, grads = loss_response(bce, logits, 1)
    p = torch.sigmoid(logits)
    assert values == pytest.approx((-0.5 * torch.log(p)).numpy(), rel=1e-5)
    assert grads == pytest.approx((0.5 * (p - 1)).numpy(), rel=1e-5)   # d/dx of -0.5 log p
    values0, grads0 = loss_response(bce, logits, 0)
    assert values0 == pytest.approx((-0.5 * torch.log(1 - p)).numpy(), rel=1e-5)
    assert (grads0 > 0).all() and (grads < 0).all()           # towards each target
    with pytest.raises(ValueError, match=r"\(P,\) logits and a target of 0 or 1"):
        loss_response(bce, logits, 2)
    with pytest.raises(ValueError, match="shape"):
        loss_response(bce, logits[None], 1)
