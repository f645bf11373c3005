import json

import pytest
import torch

from fusionlab.datasets import SyntheticScenes
from fusionlab.encoders import ResNetEncoder
from fusionlab.experiments import (PROFILES, format_table, get_profile, load_data, merge_results,
                                   paired_gain, run_experiment, summarise)
from fusionlab.models import FPN
from fusionlab.train import TrainConfig, load_checkpoint, seed_everything, train


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
    resumed = tiny_model(seed=123)  # different start: everything must come from the checkpoint
    result = train(resumed, data[0], None, config(steps=10, checkpoint=str(ckpt)))
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


def test_profiles(monkeypatch):
    monkeypatch.setenv("FUSIONLAB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("cpu") is PROFILES["cpu"]
    monkeypatch.setenv("FUSIONLAB_PROFILE", "laptop")
    with pytest.raises(ValueError, match="laptop"):
        get_profile()


def test_summarise():
    s = summarise([0.5, 0.7, float("nan")])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1414, abs=1e-4)
    assert s["n"] == 2 and s["min"] == 0.5 and s["max"] == 0.7


def test_experiment_runner_writes_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    out = tmp_path / "fl.json"
    profile = PROFILES["smoke"]
    first = run_experiment("fusion-levels", profile, [0], out, variants=["c5", "FPN c4-c5"])
    assert first["data"] == "SyntheticScenes"
    assert first["summary"]["c5"]["miou"]["n"] == 1
    assert set(first["provenance"]) >= {"device", "torch", "commit", "wall_seconds", "seeds"}
    before = json.loads(out.read_text())["runs"]
    again = run_experiment("fusion-levels", profile, [0, 1], out, variants=["c5", "FPN c4-c5"])
    assert again["runs"][:2] == before  # finished runs are kept, not repeated
    assert again["summary"]["FPN c4-c5"]["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="experiment"):
        run_experiment("nothing", profile, [0], out)


def test_merge_results_of_parallel_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    profile = PROFILES["smoke"]
    a = run_experiment("fusion-levels", profile, [0], tmp_path / "a.json", variants=["c5"])
    b = run_experiment("fusion-levels", profile, [0], tmp_path / "b.json",
                       variants=["FPN c4-c5"])
    merged = merge_results("fusion-levels", [tmp_path / "a.json", tmp_path / "b.json"],
                           tmp_path / "all.json")
    assert merged["runs"] == a["runs"] + b["runs"]
    assert set(merged["summary"]) == {"c5", "FPN c4-c5"}
    assert merged["provenance"]["wall_seconds"] == pytest.approx(
        a["provenance"]["wall_seconds"] + b["provenance"]["wall_seconds"])
    assert json.loads((tmp_path / "all.json").read_text())["summary"] == merged["summary"]
    with pytest.raises(ValueError, match="in two files"):
        merge_results("fusion-levels", [tmp_path / "a.json", tmp_path / "a.json"],
                      tmp_path / "bad.json")
    with pytest.raises(ValueError, match="exfuse"):
        merge_results("exfuse", [tmp_path / "a.json"], tmp_path / "bad.json")


def test_paired_gain_and_table():
    runs = [{"variant": v, "seed": s, "miou": m, "iou": [m, m / 2]}
            for v, s, m in [("a", 0, 0.40), ("a", 1, 0.50), ("b", 0, 0.43), ("b", 1, 0.52),
                            ("c", 0, 0.39), ("c", 1, 0.53)]]
    results = {"experiment": "toy", "runs": runs, "classes": ["Road", "Pole"],
               "thin_classes": ["Pole"]}
    g = paired_gain(results, "a", "b")
    assert g["gains"] == pytest.approx([0.03, 0.02]) and g["mean"] == pytest.approx(0.025)
    assert g["same_sign"] and g["seeds"] == [0, 1]
    mixed = paired_gain(results, "a", "c")
    assert not mixed["same_sign"] and mixed["mean"] == pytest.approx(0.01)
    assert paired_gain(results, "a", "b", "thin_iou")["mean"] == pytest.approx(0.0125)
    with pytest.raises(ValueError, match="'d'"):
        paired_gain(results, "a", "d")
    summary = {v: {m: {"mean": 0.5, "std": 0.01} for m in ("miou", "thin_iou", "boundary_f")}
               | {"seeds": [0, 1]} for v in "abc"}
    table = format_table({"summary": summary}, variants=["c", "a"])
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| c", "| a"]


def test_fallback_to_synthetic_scenes_is_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    data = load_data(PROFILES["smoke"])
    assert data.is_fallback and data.source == "SyntheticScenes"
    assert len(data.train) == PROFILES["smoke"].train_images
    banner = data.banner()
    assert "NOT CamVid's" in banner and str(tmp_path / "none" / "camvid") in banner


def test_evaluate_outputs_scores_every_auxiliary_prediction(data):
    from fusionlab.models import ExFuse
    from fusionlab.train import evaluate, evaluate_outputs

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
