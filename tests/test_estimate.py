"""The GPU-time estimate of the chapters: the FLOPs of a training step, the loader's time and
their arithmetic, and the chapters' declaration of what they train live."""

from fractions import Fraction

import pytest
import torch

from fusionlab.bench import count_flops
from fusionlab.experiments import PROFILES, BuildContext, Variant, build_model, load_data
from fusionlab.experiments.ablations import CHAPTERS, EXPERIMENTS
from fusionlab.experiments.estimate import (chapter_estimate, estimate_table, loader_seconds,
                                            training_flops)
from fusionlab.experiments.spec import Chapter

SMOKE = PROFILES["smoke"]


def _fpn():
    torch.manual_seed(0)
    return build_model(Variant("fpn"), BuildContext(11, SMOKE))


def test_a_training_step_costs_two_to_four_forward_passes_and_scales_with_pixels():
    model = _fpn()
    step = training_flops(model, (64, 64), 11)
    forward = count_flops(model, (64, 64))
    assert 2 * forward < step < 4 * forward      # backward: about twice the forward pass
    ratio = training_flops(model, (128, 128), 11) / step   # 4 times the pixels
    assert 3.8 < ratio < 4.2, ratio                        # up to the borders of tiny maps


def test_counting_leaves_the_gradients_and_the_mode_alone():
    model = _fpn().eval()
    first = next(model.parameters())
    first.grad = torch.full_like(first, 3.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    training_flops(model, (32, 32), 11)
    assert not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # BN statistics
    assert torch.equal(first.grad, torch.full_like(first, 3.0))
    assert all(p.grad is None for p in list(model.parameters())[1:])


def test_the_estimate_is_the_larger_of_arithmetic_and_loader():
    data = load_data(SMOKE)
    chapter = Chapter(9, "09-test", "test", (), (), "fusionlab.models",
                      live={"FPN": Variant("fpn")}, live_share=Fraction(1, 2))
    model = build_model(Variant("fpn"), BuildContext(len(data.classes), SMOKE, data.train))
    steps = SMOKE.steps // 2
    flops = (steps * SMOKE.batch_size * training_flops(model, SMOKE.size, len(data.classes))
             + len(data.val) * count_flops(model, SMOKE.size))
    slow_gpu = chapter_estimate(chapter, SMOKE, data, 1e-6, tflops=1e-9, cores=2)
    assert slow_gpu["steps"] == steps and slow_gpu["models"] == 1
    assert slow_gpu["tflop"] == pytest.approx(flops / 1e12, rel=1e-6)
    assert slow_gpu["compute_s"] == pytest.approx(flops / 1e3, rel=1e-6)
    assert slow_gpu["seconds"] == slow_gpu["compute_s"]
    slow_loader = chapter_estimate(chapter, SMOKE, data, 10.0, tflops=1e6, cores=4)
    assert slow_loader["loader_s"] == pytest.approx(steps * SMOKE.batch_size * 10.0 / 4)
    assert slow_loader["seconds"] == slow_loader["loader_s"]
    with pytest.raises(ValueError, match="positive"):
        chapter_estimate(chapter, SMOKE, data, 1e-3, tflops=0)
    with pytest.raises(ValueError, match="images"):
        loader_seconds(data, images=0)
    assert loader_seconds(data, images=3) > 0


def test_the_table_has_a_row_per_chapter():
    table = estimate_table(SMOKE, data=load_data(SMOKE))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(CHAPTERS)
    assert [row.split(" | ")[1] for row in rows[1:]] == [c.title for c in CHAPTERS]


def test_chapters_declare_their_live_runs():
    for chapter in CHAPTERS:
        assert chapter.live, chapter.notebook
        assert 0 < chapter.live_share <= 1
    assert CHAPTERS[0].live_steps(PROFILES["cpu"]) == 1000       # two thirds of 1500
    assert CHAPTERS[-1].live_steps(SMOKE) == 1                    # at least one step
    assert CHAPTERS[-1].imagenet and not CHAPTERS[0].imagenet
    headline = EXPERIMENTS["head-to-head"].variants
    assert all(CHAPTERS[-1].live[label] == headline[label] for label in CHAPTERS[-1].live)
    with pytest.raises(ValueError, match="live_share"):
        Chapter(9, "09-test", "test", (), (), "fusionlab.models", live_share=Fraction(0))
