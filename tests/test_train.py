import os
import stat
import subprocess
import sys

import pytest
import torch

import fusionlab.speed as speed_module
from fusionlab.datasets import SyntheticScenes
from fusionlab.encoders import ResNetEncoder
from fusionlab.losses import AuxLoss, focal_loss
from fusionlab.provenance import git_commit
from fusionlab.models import FPN, SegOutput
from fusionlab.models.base import SegmentationModel
from fusionlab.checkpoints import load_checkpoint, load_model_weights
from fusionlab.evaluation import evaluate, evaluate_outputs
from fusionlab.speed import SpeedMode, choose_speed_mode
from fusionlab.train import TrainConfig, TrainingDiverged, seed_everything, train


def tiny_model(seed=0):
    seed_everything(seed)
    return FPN(11, ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 8, 16, 16)),
               levels=("c3", "c5"), channels=8)


def config(**kw):
    base = dict(steps=6, batch_size=2, lr=1e-2, optimizer="adamw", progress=False,
                log_every=2, eval_batch_size=4)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data():
    return (SyntheticScenes(8, (32, 48), seed=0, augment=True),
            SyntheticScenes(4, (32, 48), seed=1))


def test_training_lowers_loss_and_reports_metrics(data):
    result = train(tiny_model(), data[0], data[1], config(steps=30, log_every=10))
    losses = [h["loss"] for h in result.history]
    assert [h["step"] for h in result.history] == [10, 20, 30]
    assert losses[-1] < losses[0]
    assert 0 <= result.metrics["miou"] <= 1 and len(result.metrics["iou"]) == 11
    assert result.history[-1]["lr"] < 1e-2 * 0.2  # poly schedule has decayed


TRAIN_TWO_STEPS = """
from fusionlab.datasets import SyntheticScenes
from fusionlab.encoders import ResNetEncoder
from fusionlab.models import FPN
from fusionlab.train import TrainConfig, train
model = FPN(11, ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 8, 16, 16)), channels=8)
data = SyntheticScenes(4, (32, 48), seed=0)
train(model, data, data, TrainConfig(steps=2, batch_size=2, eval_batch_size=4, progress={}))
"""


@pytest.mark.parametrize("progress, tqdm_disable, shown", [
    (True, None, True), (False, None, False), (True, "1", False)])
def test_progress_bars_hide_when_asked_or_by_tqdm_disable(progress, tqdm_disable, shown):
    # tqdm reads TQDM_DISABLE when it is imported: a process of its own for each case
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    if tqdm_disable:
        env["TQDM_DISABLE"] = tqdm_disable
    done = subprocess.run([sys.executable, "-c", TRAIN_TWO_STEPS.format(progress)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("training" in done.stderr) is shown and ("evaluating" in done.stderr) is shown


def test_repeatable_on_cpu(data):
    a = train(tiny_model(), data[0], None, config())
    b = train(tiny_model(), data[0], None, config())
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


class Interrupting(torch.utils.data.Dataset):
    """Raises KeyboardInterrupt when sample number ``after`` is requested."""

    def __init__(self, dataset, after):
        self.dataset, self.after, self.calls = dataset, after, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.dataset[i]


def test_resume_after_interruption_matches_uninterrupted_run(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    full = tiny_model()
    train(full, data[0], None, config(steps=10))
    interrupted = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        # 2 images per step: the 15th sample is in step 8, after the checkpoint of step 6
        train(interrupted, Interrupting(data[0], 14), None,
              config(steps=10, checkpoint=str(ckpt), checkpoint_every=3))
    assert load_checkpoint(ckpt)["step"] == 6
    state = torch.load(ckpt, weights_only=True)
    assert state["train_seconds"] > 0
    assert state["commits"] == [git_commit()]
    state["train_seconds"] = 1000.0  # the seconds of steps 1-6, as a resumed run counts them
    state["commits"] = ["a", "b"]  # steps 1-6 trained by two earlier versions of the code
    torch.save(state, ckpt)
    resumed = tiny_model(seed=123)  # different start: everything must come from the checkpoint
    result = train(resumed, data[0], None, config(steps=10, checkpoint=str(ckpt)))
    assert result.seconds_before == 1000.0 and result.train_seconds > 1000.0
    assert result.commits == ["a", "b", git_commit()]
    assert torch.load(ckpt, weights_only=True)["commits"] == result.commits
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), name
    assert [h["step"] for h in result.history] == [2, 4, 6, 8, 10]
    with pytest.raises(ValueError, match="steps=10"):
        train(tiny_model(), data[0], None, config(steps=12, checkpoint=str(ckpt)))


def test_checkpoint_is_weights_only(tmp_path, data):
    ckpt = tmp_path / "run.pt"
    train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 2 and "model" in state
    assert list(tmp_path.iterdir()) == [ckpt]  # no temporary file left behind


def test_dataset_smaller_than_batch(data):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(tiny_model(), SyntheticScenes(1, (32, 32)), None, config())


def test_bad_optimizer(data):
    with pytest.raises(ValueError, match="optimizer"):
        train(tiny_model(), data[0], None, config(optimizer="rmsprop"))


def test_evaluate_outputs_scores_every_auxiliary_prediction(data):
    from fusionlab.models.exfuse import ExFuse

    seed_everything(0)
    model = ExFuse(len(SyntheticScenes.CLASSES),
                   ResNetEncoder((2, 2, 2, 2), (8, 16, 32, 64)), ss=True, ecre=True)
    results = evaluate_outputs(model, data[1], progress=False)
    assert set(results) == {"main", "ss_c2", "ss_c3", "ss_c4", "ss_c5", "ecre"}
    assert results["main"]["miou"] == evaluate(model, data[1], progress=False)["miou"]
    assert all(0 <= r["miou"] <= 1 and len(r["iou"]) == len(SyntheticScenes.CLASSES)
               for r in results.values())
    assert len({r["pixel_accuracy"] for r in results.values()}) > 1  # six different predictions
    with pytest.raises(ValueError, match="unknown outputs"):
        evaluate_outputs(model, data[1], names=["ss_c1"], progress=False)


# ---- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,error", [
    ("steps", 0, ValueError), ("steps", -5, ValueError), ("batch_size", 0, ValueError),
    ("batch_size", -1, ValueError), ("log_every", 0, ValueError), ("steps", 2.5, TypeError),
    ("lr", 0.0, ValueError), ("lr", float("nan"), ValueError), ("precision", "fp8", ValueError),
    ("channels_last", "yes", ValueError)])
def test_config_refuses_bad_values(field, value, error):
    with pytest.raises(error, match=field):
        TrainConfig(**{field: value})


# ---- faults -------------------------------------------------------------------------------

def test_diverging_run_stops_at_the_first_non_finite_loss(data):
    model = tiny_model()
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at step \d+") as err:
        train(model, data[0], None, config(steps=30, lr=1e6, optimizer="sgd"))
    assert "no checkpoint was written" in str(err.value) and err.value.step > 1


def test_diverging_weights_are_never_saved(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    with pytest.raises(TrainingDiverged, match=r"weights are not finite after step") as err:
        train(tiny_model(), data[0], None, config(steps=30, lr=1e6, optimizer="sgd",
                                                  checkpoint=str(ckpt), checkpoint_every=1))
    kept = load_checkpoint(ckpt)
    assert kept["step"] == err.value.step - 1
    assert all(v.isfinite().all() for v in kept["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("field,value", [("optimizer", "sgd"), ("lr", 5e-3), ("momentum", 0.5),
                                         ("aux_weight", 1.0), ("precision", "fp32")])
def test_resume_with_another_training_field_names_it(data, tmp_path, field, value):
    ckpt = tmp_path / "run.pt"
    train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))
    model = tiny_model(seed=123)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=f"{field}=.*this run has {field}={value!r}"):
        train(model, data[0], None, config(steps=2, checkpoint=str(ckpt), **{field: value}))
    for name, weight in model.state_dict().items():  # refused: nothing loaded into the model
        assert torch.equal(weight, before[name]), name


def test_a_checkpoint_of_an_older_fusionlab(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))
    state = torch.load(ckpt, weights_only=True)
    assert train(tiny_model(), data[0], None, config(  # resumed at the same code: named once
        steps=2, checkpoint=str(ckpt))).commits == [git_commit()]
    del state["train_seconds"]  # no training time: resumes, with a warning, counting from it
    del state["commits"]  # nor the code that trained it, which the run then calls unknown
    torch.save(state, ckpt)
    with pytest.warns(UserWarning, match="records no training time"):
        result = train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))
    assert result.seconds_before == 0 and result.train_seconds < 1  # nothing left to train
    assert result.commits == ["unknown", git_commit()]
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["seed"]  # no seed: which run it continues is unknown, so it refuses
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match="records no seed .written by an older"):
        train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))


def test_checkpoint_folder_fails_before_training(data, tmp_path):
    never = Interrupting(data[0], 0)  # loading any sample would raise KeyboardInterrupt
    with pytest.raises(ValueError, match="is a folder"):
        train(tiny_model(), never, None, config(checkpoint=str(tmp_path)))
    assert never.calls == 0


@pytest.mark.parametrize("content", [b"", b"step,loss\n1,2.3\n", b"\x80\x02not really"])
def test_unreadable_checkpoint_names_the_file(data, tmp_path, content):
    ckpt = tmp_path / "broken.pt"
    ckpt.write_bytes(content)
    with pytest.raises(ValueError, match="broken.pt") as err:
        train(tiny_model(), data[0], None, config(checkpoint=str(ckpt)))
    assert "unsafe" not in str(err.value) and "weights_only" not in str(err.value)
    with pytest.raises(ValueError, match="broken.pt"):
        load_model_weights(tiny_model(), ckpt)


def test_checkpoint_of_another_model_gives_a_short_error(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))
    other = FPN(11, ResNetEncoder(blocks=(2, 1, 1, 1), widths=(8, 8, 16, 32)),
                levels=("c2", "c5"), channels=8)
    with pytest.raises(ValueError, match=r"\d+ missing keys.*\d+ unexpected keys.*\d+ shapes") \
            as err:
        load_model_weights(other, ckpt)
    assert len(str(err.value)) < 700
    n_missing = len(set(other.state_dict()) - set(torch.load(ckpt)["model"]))
    assert f"{n_missing} missing keys" in str(err.value)
    with pytest.raises(ValueError, match="another model"):
        train(other, data[0], None, config(steps=2, checkpoint=str(ckpt)))


def test_batch_of_one_at_a_small_size_suggests_a_larger_batch(data):
    with pytest.raises(ValueError, match=r"step 1: BatchNorm.*batch_size >= 2"):
        train(tiny_model(), SyntheticScenes(2, (32, 32)), None, config(batch_size=1))


class Altered(torch.utils.data.Dataset):
    """``dataset`` with ``change(i, sample)`` applied to every sample."""

    def __init__(self, dataset, change):
        self.dataset, self.change = dataset, change

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.change(i, dict(self.dataset[i]))


def test_images_smaller_than_the_output_stride(data):
    small = Altered(data[0], lambda i, s: {"image": s["image"][:, :16, :20],
                                           "mask": s["mask"][:16, :20]})
    with pytest.raises(ValueError, match=r"16 x 20 .*output stride of 32"):
        train(tiny_model(), small, None, config())


def test_float64_images(data):
    double = Altered(data[0], lambda i, s: {**s, "image": s["image"].double()})
    with pytest.raises(TypeError, match="float32, got torch.float64"):
        train(tiny_model(), double, None, config())


def test_one_nan_pixel_is_refused_before_batchnorm_sees_it(data):
    def poison(i, sample):
        if i == 5:
            sample["image"] = sample["image"].clone()
            sample["image"][1, 7, 9] = float("nan")
        return sample

    model = tiny_model()
    with pytest.raises(ValueError, match=r"step \d+: .*dataset indices \[5\].*NaN") as err:
        train(model, Altered(data[0], poison), None, config(steps=12))
    assert "batch positions" in str(err.value)
    assert all(b.isfinite().all() for b in model.buffers() if b.is_floating_point())


def test_logged_loss_after_resume_with_uneven_intervals(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    full = train(tiny_model(), data[0], None, config(steps=8, log_every=4))
    with pytest.raises(KeyboardInterrupt):
        # checkpoints at steps 3 and 6; the 15th sample is in step 8
        train(tiny_model(), Interrupting(data[0], 14), None,
              config(steps=8, log_every=4, checkpoint=str(ckpt), checkpoint_every=3))
    assert load_checkpoint(ckpt)["step"] == 6
    resumed = train(tiny_model(), data[0], None,
                    config(steps=8, log_every=4, checkpoint=str(ckpt), checkpoint_every=3))
    assert [h["step"] for h in resumed.history] == [4, 8]
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in full.history], abs=1e-6)


def test_checkpoint_mode_follows_the_umask(data, tmp_path):
    ckpt = tmp_path / "run.pt"
    old = os.umask(0o022)
    try:
        train(tiny_model(), data[0], None, config(steps=2, checkpoint=str(ckpt)))
    finally:
        os.umask(old)
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o644


# ---- the speed mode -----------------------------------------------------------------------

def test_choose_speed_mode(monkeypatch):
    monkeypatch.setattr(speed_module, "cpu_has_native_bf16", lambda: True)
    onednn = torch.backends.mkldnn.is_available() and \
        torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    assert choose_speed_mode("cpu") == SpeedMode("cpu", "bf16", onednn)
    monkeypatch.setattr(speed_module, "cpu_has_native_bf16", lambda: False)
    assert choose_speed_mode("cpu").precision == "fp32"
    assert choose_speed_mode("cpu", "bf16", False) == SpeedMode("cpu", "bf16", False)
    assert choose_speed_mode("cuda") == SpeedMode("cuda", "fp16", False)
    assert SpeedMode("cuda", "fp16", False).grad_scaling
    assert not SpeedMode("cpu", "bf16", True).grad_scaling
    assert SpeedMode("cpu", "bf16", True).name == "channels_last+bf16"
    assert SpeedMode("cpu", "fp32", False).name == "fp32"
    assert SpeedMode("cpu", "fp32", False).autocast_dtype is None
    assert SpeedMode("cuda", "fp16", False).autocast_dtype == torch.float16
    with pytest.raises(ValueError, match="CUDA only"):
        choose_speed_mode("cpu", "fp16")


class Recording(SegmentationModel):
    """A two-layer model that records the autocast state of each call, with a 1-channel
    auxiliary output "edge" that declares its own loss."""

    def __init__(self, edge_weight=0.5):
        super().__init__(2, torch.nn.Identity())
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)
        self.edge = torch.nn.Conv2d(3, 1, 1)
        self.edge_weight, self.seen, self.edge_calls = edge_weight, [], 0

    def forward(self, images):
        autocast = torch.is_autocast_enabled("cpu")
        self.seen.append((autocast and torch.get_autocast_dtype("cpu"),
                          images.is_contiguous(memory_format=torch.channels_last)))
        return SegOutput(self.conv(images), {"edge": self.edge(images)})  # (N, 2 | 1, H, W)

    def aux_losses(self):
        def edge_loss(logits, labels):
            self.edge_calls += 1
            return focal_loss(logits, labels)
        return {"edge": AuxLoss(self.edge_weight, edge_loss)}


def two_class(dataset):
    return Altered(dataset, lambda i, s: {**s, "mask": (s["mask"] > 3).long()})


@pytest.mark.parametrize("precision,channels_last", [("bf16", True), ("fp32", False)])
def test_training_and_evaluation_use_the_speed_mode(data, precision, channels_last):
    model = Recording()
    result = train(model, two_class(data[0]), two_class(data[1]),
                   config(steps=3, precision=precision, channels_last=channels_last))
    assert result.speed == {"device": "cpu", "precision": precision,
                            "channels_last": channels_last}
    assert len(model.seen) == 3 + 1  # 3 steps, 1 evaluation batch
    assert set(model.seen) == {(precision == "bf16" and torch.bfloat16, channels_last)}
    assert model.conv.weight.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert model.edge_calls == 3  # the model's own auxiliary loss was used at every step
    assert "edge" not in evaluate_outputs(model, two_class(data[1]), progress=False)
    with pytest.raises(ValueError, match=r"'edge': 1"):
        evaluate_outputs(model, two_class(data[1]), names=["edge"], progress=False)


def test_declared_aux_weight_zero_is_not_computed(data):
    model = Recording(edge_weight=0.0)
    train(model, two_class(data[0]), None, config(steps=2))
    assert model.edge_calls == 0


# ---- evaluation at the stored resolution --------------------------------------------------

class SignModel(SegmentationModel):
    """Class 1 where the first image channel is positive: logits (-x, x)."""

    def __init__(self):
        super().__init__(2, torch.nn.Identity())
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        x = images[:, :1]  # (N, 1, H, W)
        return SegOutput(torch.cat([-x, x], 1))  # (N, 2, H, W)


class StoredResolution(torch.utils.data.Dataset):
    """One 4 x 4 image whose columns hold -1, -1, 0.2, 3; its labels at the training size
    (class 1 in column 3) and at the stored size 8 x 8 (class 1 in columns 5-7)."""

    def __init__(self, with_eval_mask):
        self.with_eval_mask = with_eval_mask

    def __len__(self):
        return 2

    def __getitem__(self, i):
        image = torch.tensor([-1.0, -1.0, 0.2, 3.0]).expand(3, 4, 4).clone()
        mask = torch.zeros(4, 4, dtype=torch.long)
        mask[:, 3] = 1
        sample = {"image": image, "mask": mask}
        if self.with_eval_mask:
            sample["eval_mask"] = torch.zeros(8, 8, dtype=torch.long)
            sample["eval_mask"][:, 5:] = 1
        return sample


def test_evaluation_at_the_stored_resolution():
    # Bilinear upsampling (align_corners=False) of the columns -1, -1, 0.2, 3 to 8 columns
    # samples source x = j / 2 - 0.25: column 4 -> -1 + 0.75 * 1.2 = -0.1 (class 0), column
    # 5 -> 0.2 + 0.25 * 2.8 = 0.9 (class 1): the prediction matches the stored labels exactly.
    # (Nearest upsampling would predict class 1 from column 4 on.)
    stored = evaluate(SignModel(), StoredResolution(True), progress=False)
    assert stored["eval_size"] == (8, 8)
    assert stored["miou"] == 1.0 and stored["pixel_accuracy"] == 1.0
    # at the training size: prediction columns 2-3 vs label column 3
    small = evaluate(SignModel(), StoredResolution(False), progress=False)
    assert small["eval_size"] == (4, 4)
    assert small["iou"] == pytest.approx([2 / 3, 1 / 2])


def test_evaluation_refuses_mixed_label_sizes():
    mixed = torch.utils.data.ConcatDataset([StoredResolution(True), StoredResolution(False)])
    with pytest.raises(ValueError, match=r"several sizes \[\(4, 4\), \(8, 8\)\]"):
        evaluate(SignModel(), mixed, batch_size=2, progress=False)
