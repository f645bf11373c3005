"""The contract every model of the builder table keeps: logits and auxiliary outputs at the
input size (odd sizes too), stable auxiliary names, a gradient in every parameter, clear errors on
bad images. Every variant of every experiment is checked, so a new paper's models are covered as
soon as its experiment lists them."""

import pytest
import torch

from fusionlab.datasets import SyntheticScenes
from fusionlab.experiments import EXPERIMENTS, MODELS, PROFILES, BuildContext, Variant, build_model
from fusionlab.models import SegOutput

# a training set, for heads fitted to the training labels (DUpsampling's projection)
CONTEXT = BuildContext(num_classes=11, profile=PROFILES["smoke"],
                       train_set=SyntheticScenes(4, (48, 64)))
CASES = {f"{e.name}: {label}": v for e in EXPERIMENTS.values() for label, v in e.variants.items()}
CASES.update({name: Variant(name) for name in MODELS})  # each model with its defaults


@pytest.mark.parametrize("variant", CASES.values(), ids=CASES.keys())
def test_outputs_at_input_size_and_gradients_everywhere(variant):
    torch.manual_seed(0)
    model = build_model(variant, CONTEXT)
    out = model(torch.randn(2, 3, 123, 157))
    assert isinstance(out, SegOutput)
    assert out.logits.shape == (2, CONTEXT.num_classes, 123, 157)
    for name, aux in out.aux.items():
        assert aux.shape[0] == 2 and aux.shape[-2:] == (123, 157), name
    again = model(torch.randn(1, 3, 64, 96))
    assert sorted(again.aux) == sorted(out.aux)  # names do not depend on the input
    loss = out.logits.square().mean() + sum(a.square().mean() for a in out.aux.values())
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bad_images_are_refused_clearly(name):
    model = build_model(name, CONTEXT)
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(3, 64, 64))


def test_unknown_model_or_option_names_what_exists():
    with pytest.raises(ValueError, match="fpn"):
        build_model("fpm", CONTEXT)
    with pytest.raises(ValueError, match="levels"):
        build_model("fpn", CONTEXT, level=("c5",))
