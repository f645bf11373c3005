"""The cost measurements of ``fusionlab.bench``: FLOPs, latency per precision, training memory."""

import pytest
import torch

from fusionlab.bench import (count_flops, forward_latency, training_memory,
                             training_step_time)
from fusionlab.encoders import ResNetEncoder
from fusionlab.models import FPN
from fusionlab.models.composed import BorderSupervised


def _fpn():
    torch.manual_seed(0)
    return FPN(5, ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64)), channels=16)


def test_latency_is_measured_per_precision_and_refuses_unknown_ones():
    model = _fpn()
    for precision in ("fp32", "bf16"):
        report = forward_latency(model, (32, 48), repeats=2, warmup=1, precision=precision)
        assert report["precision"] == precision and report["repeats"] == 2
        assert 0 < report["min_s"] <= report["median_s"] <= report["max_s"]
        assert report["threads"] == torch.get_num_threads()
    assert model.training  # the mode is given back
    with pytest.raises(ValueError, match="precision must be one of"):
        forward_latency(model, (32, 48), precision="fp8")


def test_training_memory_counts_parameter_states_and_activations_that_grow_with_the_batch():
    model = _fpn()
    one = training_memory(model, 1, (32, 48), 5)
    two = training_memory(model, 2, (32, 48), 5)
    params = sum(p.numel() for p in model.parameters())
    assert one["parameter_state_bytes"] == 4 * 4 * params  # fp32 weights, grads, AdamW's two
    assert one["total_bytes"] == one["activation_bytes"] + one["parameter_state_bytes"]
    # the activations scale with the batch (the few per-channel statistics BN saves do not)
    assert 1.85 < two["activation_bytes"] / one["activation_bytes"] <= 2.0
    # at least the input image and every pixel's logits are saved for the backward pass
    assert one["activation_bytes"] > 4 * (3 + 5) * 32 * 48
    assert all(p.grad is None for p in model.parameters())  # nothing left behind
    bordered = training_memory(BorderSupervised(_fpn()), 1, (32, 48), 5)
    assert bordered["activation_bytes"] > one["activation_bytes"]  # the Border Network's
    with pytest.raises(ValueError, match="batch_size"):
        training_memory(model, 0, (32, 48), 5)


def test_flops_count_a_known_convolution():
    conv = torch.nn.Conv2d(3, 4, 1, bias=False)
    # 2 FLOPs per multiply-add: 3 inputs x 4 outputs per pixel
    assert count_flops(conv, (8, 8)) == 2 * 3 * 4 * 8 * 8


def test_training_step_time_trains_the_model_it_times():
    model = _fpn()
    before = [p.detach().clone() for p in model.parameters()]
    report = training_step_time(model, 2, (32, 48), 5, steps=2, warmup=1)
    assert report["seconds_per_step"] > 0 and report["steps"] == 2
    assert report["batch_size"] == 2 and report["size"] == [32, 48]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="steps"):
        training_step_time(model, 2, (32, 48), 5, steps=0)
