"""Experiments: profiles, the store (never loses results), statistics, the report tables, the
paper numbers' keys, the fallback data."""

import copy
import dataclasses
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import real_weights

from fusionlab.experiments import cli, runner, store
from fusionlab.experiments import (EXPERIMENTS, PROFILES, Experiment, PaperNumber,
                                   ResultsConflict, Variant, check_live, class_gain_summary,
                                   class_gains, costs_profile, costs_table, gain_clause, gain_text,
                                   gain_verdict, gains_table, get_profile, load_data,
                                   mean_interval, merge_results, paired_gain, parse_options,
                                   precision_effect, precision_speed, precision_speed_text,
                                   precision_text, provenance_line, read_results, real_gains,
                                   results_table, run_experiment, shared_seeds, summarise,
                                   t_interval, unlearned_classes)
from fusionlab.encoders import MobileNetV2Encoder, ResNetEncoder
from fusionlab.datasets import SyntheticScenes
from fusionlab.experiments import (BuildContext, build_encoder, build_model, imagenet_or_scratch,
                                   with_encoder)
import fusionlab.train
from fusionlab.checkpoints import load_checkpoint
from fusionlab.experiments.profiles import train_config as runner_train_config
from fusionlab.experiments.runner import variant_definitions
from fusionlab.experiments.stats import run_precision
from fusionlab.provenance import git_commit
from fusionlab.experiments.store import (reproduce_command, runs_commits,
                                         stored_config, with_defaults)
from fusionlab.experiments.report import MIXED_MARK, MIXED_NOTE, PRECISION_NAMES, footing_table
from fusionlab.weights import WeightsNotFoundError
from fusionlab.train import train


@pytest.fixture
def no_camvid(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")


def test_profiles(monkeypatch):
    monkeypatch.setenv("FUSIONLAB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("cpu") is PROFILES["cpu"]
    monkeypatch.setenv("FUSIONLAB_PROFILE", "laptop")
    with pytest.raises(ValueError, match="laptop"):
        get_profile()


def test_a_profile_describes_what_it_trains():
    cpu = PROFILES["cpu"]
    assert cpu.describe() == (
        "a ResNet-18-shaped encoder (stage widths 32, 64, 128, 256) from scratch on CamVid's "
        "367 training images at 120 × 160 pixels, for 1500 steps of batch 8, with a decoder "
        "width of 64")
    assert cpu.describe(16).endswith("with a decoder width of 64 and output stride 16")
    smoke = PROFILES["smoke"]
    assert "on CamVid's 16 training images at 48 × 64 pixels" in smoke.describe()
    deeper = dataclasses.replace(cpu, blocks=(1, 1, 5, 1))
    assert deeper.describe().startswith("a ResNet-shaped (1, 1, 5, 1 blocks per stage) encoder")
    assert with_encoder(cpu, "mobilenet_v2-imagenet").describe().startswith(
        "the MobileNetV2Encoder with torchvision's ImageNet weights on CamVid's 367")


def test_profiles_name_their_encoder(tmp_path, monkeypatch):
    cpu = PROFILES["cpu"]
    assert cpu.encoder == "resnet" and not cpu.pretrained
    assert isinstance(build_encoder(cpu), ResNetEncoder)
    assert build_encoder(cpu, blocks=(1, 1, 5, 1)).blocks == (1, 1, 5, 1)
    mobile = with_encoder(cpu, "mobilenet_v2")
    assert mobile.encoder == "mobilenet_v2" and with_encoder(cpu, None) is cpu
    encoder = build_encoder(mobile, output_stride=16)
    assert isinstance(encoder, MobileNetV2Encoder) and encoder.strides["c5"] == 16
    with pytest.raises(ValueError, match="blocks=.*MobileNetV2"):
        build_encoder(mobile, blocks=(1, 1, 5, 1))
    with pytest.raises(ValueError, match="encoder must be one of"):
        with_encoder(cpu, "vgg16")
    # without the weights: the profile unchanged and a banner naming the places tried
    monkeypatch.setenv("FUSIONLAB_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    profile, banner = imagenet_or_scratch(cpu)
    assert profile is cpu and "from scratch" in banner and str(tmp_path) in banner
    with pytest.raises(WeightsNotFoundError):
        build_encoder(with_encoder(cpu, "mobilenet_v2-imagenet"))


@pytest.mark.skipif(real_weights() is None, reason="needs FUSIONLAB_WEIGHTS")
def test_imagenet_or_scratch_finds_the_weights():
    profile, banner = imagenet_or_scratch(PROFILES["cpu"])
    assert profile.encoder == "mobilenet_v2-imagenet" and profile.pretrained and banner == ""
    reference = MobileNetV2Encoder.pretrained(path=real_weights())
    assert torch.equal(build_encoder(profile).state_dict()["features.5.conv.1.0.weight"],
                       reference.state_dict()["features.5.conv.1.0.weight"])


def test_summarise_counts_nan_instead_of_hiding_it():
    s = summarise([0.5, 0.7, float("nan")])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1414, abs=1e-4)
    assert s["n"] == 2 and s["nan"] == 1 and s["min"] == 0.5 and s["max"] == 0.7
    empty = summarise([float("nan")])
    assert empty["n"] == 0 and empty["nan"] == 1 and math.isnan(empty["mean"])


def test_t_interval_against_the_table_value():
    low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / 3 ** 0.5  # t(0.975, 2 degrees of freedom) * s / sqrt(n), s = 1
    assert low == pytest.approx(2 - half, abs=1e-5) and high == pytest.approx(2 + half, abs=1e-5)
    assert all(math.isnan(x) for x in t_interval([1.0]))
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=95)


def toy_results():
    runs = [{"variant": v, "seed": s, "miou": m, "iou": [m, m / 2], "boundary_f": m / 3}
            for v, s, m in [("a", 0, 0.40), ("a", 1, 0.50), ("a", 2, 0.45),
                            ("b", 0, 0.43), ("b", 1, 0.52), ("b", 2, 0.48),
                            ("c", 0, 0.39), ("c", 1, 0.53), ("c", 2, 0.45)]]
    return {"experiment": "toy", "runs": runs, "classes": ["Road", "Pole"],
            "thin_classes": ["Pole"]}


def test_the_classes_no_model_learns_are_named_with_their_best_model():
    runs = [{"variant": v, "seed": s, "miou": 0.5, "iou": iou}
            for v, s, iou in [("a", 0, [0.9, 0.01, None]), ("a", 1, [0.8, 0.03, None]),
                              ("b", 0, [0.9, 0.04, None]), ("b", 1, [0.9, 0.05, 0.02])]]
    results = {"experiment": "toy", "runs": runs, "classes": ["Road", "Pole", "Sign"]}
    # Pole: a's mean 2%, b's 4.5%; Sign: absent but once, 2%; Road is learned
    assert unlearned_classes(results, ["a", "b"]) == ("Pole (at most 4.5%, b) and "
                                                      "Sign (at most 2.0%, b)")
    assert unlearned_classes(results, ["a"]) == "Pole (at most 2.0%, a)"  # Sign: never present
    assert unlearned_classes(results, ["a", "b"], below=0.04) == "Sign (at most 2.0%, b)"
    assert unlearned_classes(results, ["a", "b"], below=0.01) == "none"
    assert unlearned_classes(results, ["c"]) == unlearned_classes(None, ["a"]) == (
        "none (no reference results yet)")


def test_paired_gain_interval_decides_what_is_real():
    results = toy_results()
    g = paired_gain(results, "a", "b")
    assert g["gains"] == pytest.approx([0.03, 0.02, 0.03]) and g["seeds"] == [0, 1, 2]
    assert g["ci"] == pytest.approx(t_interval([0.03, 0.02, 0.03]))
    assert g["real"] and g["same_sign"]
    mixed = paired_gain(results, "a", "c")
    assert mixed["mean"] == pytest.approx(0.02 / 3) and not mixed["real"]
    assert paired_gain(results, "a", "b", "thin_iou")["mean"] == pytest.approx(0.04 / 3)
    with pytest.raises(ValueError, match="'d'"):
        paired_gain(results, "a", "d")
    assert g["mixed_precision"] == []                      # runs stored without a precision


def test_seeds_paired_across_precisions_are_flagged_in_gains_and_footings():
    results = toy_results()
    for run in results["runs"]:                            # seed 1 of b in bf16, the rest fp32
        bf16 = run["variant"] == "b" and run["seed"] == 1
        run["speed"] = {"device": "cpu", "precision": "bf16" if bf16 else "fp32",
                        "channels_last": True}
    assert paired_gain(results, "a", "b")["mixed_precision"] == [1]
    assert paired_gain(results, "a", "c")["mixed_precision"] == []
    assert paired_gain(results, "a", "b")["gains"] == pytest.approx([0.03, 0.02, 0.03])
    experiment = Experiment("toy", "toy", {v: Variant("fcn") for v in "abc"},
                            pretrained=(("a", "b"), ("a", "c")))
    table = gains_table(results, experiment, [("a", "b"), ("a", "c")], metrics=("miou",))
    lines = table.splitlines()
    assert lines[2].endswith(f"| +3.0, +2.0{MIXED_MARK}, +3.0 | yes |")
    assert MIXED_MARK not in lines[3] and lines[-1] == MIXED_NOTE
    alone = gains_table(results, experiment, [("a", "c")], metrics=("miou",))
    assert MIXED_NOTE not in alone and len(alone.splitlines()) == 3
    assert gain_clause(results, "a", "b").endswith(
        "which is a real gain (on 1 of its 3 seeds the two runs trained at different autocast "
        "precisions)")
    assert "precision" not in gain_clause(results, "a", "c")
    rows = footing_table(experiment, None, results).splitlines()
    assert "3 seeds (1 of them of mixed precision): real gain" in rows[2]
    assert "mixed" not in rows[3]


def test_the_precision_effect_pairs_one_model_of_two_files_by_seed():
    def stored(experiment, label, precisions, mious, borrowed=()):
        runs = [{"variant": label, "seed": s, "miou": m, "iou": [m, m],
                 "speed": {"precision": p}, **({"borrowed_from": "x"} if s in borrowed else {})}
                for s, (p, m) in enumerate(zip(precisions, mious))]
        return {"experiment": experiment, "variants": {label: {"model": "fpn", "options": {}}},
                "runs": runs, "classes": ["Road", "Pole"], "thin_classes": ["Pole"]}

    one = stored("ch1", "FPN c2-c5", ["bf16", "bf16", "bf16", "fp32"], [0.63, 0.62, 0.64, 0.60])
    six = stored("ch6", "FPN", ["fp32", "fp32", "bf16", "fp32"], [0.61, 0.61, 0.64, 0.60])
    e = precision_effect(one, "FPN c2-c5", six, "FPN")
    assert e["seeds"] == [0, 1]                      # seeds 2 and 3 trained at one precision
    assert e["precisions"] == ("fp32", "bf16")
    assert e["differences"] == pytest.approx([-0.02, -0.01])
    assert e["ci"] == pytest.approx(t_interval([-0.02, -0.01]))
    swapped = precision_effect(six, "FPN", one, "FPN c2-c5")           # fp32 minus bf16 still
    assert swapped["differences"] == pytest.approx(e["differences"])
    assert precision_text(one, "FPN c2-c5", six, "FPN") == (
        "float32 minus bfloat16 on the same model and seeds (0, 1): -1.5 points (95% interval "
        f"{100 * e['ci'][0]:+.1f} to {100 * e['ci'][1]:+.1f})")
    copied = stored("ch6", "FPN", ["fp32", "bf16"], [0.61, 0.62], borrowed=(1,))
    assert precision_effect(one, "FPN c2-c5", copied, "FPN")["seeds"] == [0]   # a copy is no pair
    alike = stored("ch6", "FPN", ["bf16", "bf16"], [0.61, 0.62])
    assert precision_effect(one, "FPN c2-c5", alike, "FPN") is None          # no pair yet
    assert precision_text(one, "FPN c2-c5", alike, "FPN") == "not measured yet"
    assert precision_text(None, "FPN c2-c5", six, "FPN") == "not measured yet"
    other = {**six, "variants": {"FPN": {"model": "fpn", "options": {"width": 32}}}}
    with pytest.raises(ValueError, match="not one model"):
        precision_effect(one, "FPN c2-c5", other, "FPN")
    with pytest.raises(ValueError, match="not one model"):                   # nor in the prose
        precision_text(one, "FPN c2-c5", other, "FPN")
    with pytest.raises(ValueError, match="'FPN c4-c5' is not a variant of 'ch1'"):
        precision_effect(one, "FPN c4-c5", six, "FPN")
    fp16 = stored("ch6", "FPN", ["fp32", "fp16"], [0.61, 0.62])
    with pytest.raises(ValueError, match="different precisions"):
        precision_effect(one, "FPN c2-c5", fp16, "FPN")


def test_prose_names_the_real_gains_and_their_sign():
    results = toy_results()
    with_loss = {**results, "runs": results["runs"] + [
        {"variant": "d", "seed": s, "miou": m, "iou": [m, m], "boundary_f": m}
        for s, m in [(0, 0.30), (1, 0.41), (2, 0.36)]]}
    pairs = [("a", "b"), ("a", "c"), ("a", "d"), ("a", "e")]  # e was never run
    assert real_gains(with_loss, pairs) == "b vs a, d vs a (a loss)"
    assert real_gains(with_loss, [("a", "c")]) == "none"
    assert real_gains(None, pairs) == "none (no reference results yet)"
    assert gain_verdict(with_loss, "a", "b") == "is a real gain"
    assert gain_verdict(with_loss, "a", "d") == "is a real loss"
    assert gain_verdict(with_loss, "a", "c") == "is not distinguishable from zero"
    assert gain_verdict(with_loss, "a", "e").startswith("cannot be read yet")
    assert gain_verdict(None, "a", "b").startswith("cannot be read yet")
    assert gain_clause(with_loss, "a", "d") == (f"{gain_text(with_loss, 'a', 'd')}, which is a "
                                                "real loss")
    assert gain_text(with_loss, "a", "d").startswith("-")
    assert gain_clause(with_loss, "a", "e") == gain_clause(None, "a", "b") == "not run yet"
    # f shares no seed with a, g one seed: left out, or said to have no interval
    partial = {**results, "runs": results["runs"] + [
        {"variant": v, "seed": s, "miou": 0.6, "iou": [0.6, 0.6], "boundary_f": 0.6}
        for v, s in [("f", 3), ("g", 0)]]}
    assert shared_seeds(partial, "a", "f") == [] and shared_seeds(partial, "a", "g") == [0]
    assert real_gains(partial, [("a", "f"), ("a", "g"), ("a", "b")]) == "b vs a"
    assert gain_verdict(partial, "a", "f").startswith("cannot be read yet")
    assert gain_verdict(partial, "a", "g") == "cannot be told from zero with one seed"
    experiment = Experiment(name="toy", title="toy", variants={
        v: Variant("fpn") for v in "abfg"})
    rows = gains_table(partial, experiment, [("a", "f"), ("a", "g")]).splitlines()[2:]
    assert len(rows) == 1 and rows[0].startswith("| g vs a |") and rows[0].endswith("| n/a |")


def test_tables_are_markdown_in_percent_and_report_nan():
    summary = {v: {m: {"mean": 0.5, "std": 0.01, "nan": 0} for m in ("miou", "thin_iou")}
               | {"seeds": [0, 1]} for v in "abc"}
    summary["a"]["thin_iou"]["nan"] = 1
    table = results_table({"summary": summary}, metrics=("miou", "thin_iou"), variants=["c", "a"])
    lines = table.splitlines()
    assert lines[1] == "|---|---|---|---|"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| c", "| a"]
    assert "50.0 ± 1.0" in lines[2] and "(1 NaN)" in lines[3]
    experiment = Experiment("toy", "toy", {v: Variant("fcn") for v in "abc"},
                            {"b": PaperNumber(1.5, "Table 3", base="a")})
    gains = gains_table(toy_results(), experiment, metrics=("miou",)).splitlines()
    assert len(gains) == 3 and gains[2].startswith("| b vs a | +1.5 | +2.7 [")
    assert gains[2].endswith("| +3.0, +2.0, +3.0 | yes |")


def test_every_paper_number_names_an_existing_variant():
    for experiment in EXPERIMENTS.values():
        for label, number in experiment.paper.items():
            assert label in experiment.variants
            assert number.base is None or number.base in experiment.variants
    with pytest.raises(ValueError, match="unknown variants"):
        Experiment("bad", "bad", {"a": Variant("fcn")}, {"b": PaperNumber(1.0, "Table 1")})


def test_every_paper_has_comparisons_that_build_on_the_imagenet_encoder():
    """The pretrained comparisons exist for every experiment, name its variants, and build on
    MobileNetV2 (no ResNet-only option such as ExFuse's block layout)."""
    profile = with_encoder(PROFILES["smoke"], "mobilenet_v2")
    data = SyntheticScenes(4, profile.size)
    for experiment in EXPERIMENTS.values():
        assert experiment.pretrained, experiment.name
        for label in experiment.pretrained_variants:
            model = build_model(experiment.variants[label], BuildContext(11, profile, data))
            assert isinstance(model.encoder, MobileNetV2Encoder), (experiment.name, label)
    assert EXPERIMENTS["exfuse"].pretrained_variants == [
        "GCN, encoder's layout", "ExFuse without LR, encoder's layout"]
    with pytest.raises(ValueError, match="pretrained comparisons name unknown"):
        Experiment("bad", "bad", {"a": Variant("fcn")}, pretrained=(("a", "b"),))


@pytest.mark.skipif(real_weights() is None, reason="needs FUSIONLAB_WEIGHTS")
def test_on_the_imagenet_encoder_the_runner_trains_the_pretrained_comparisons(tmp_path,
                                                                              no_camvid):
    profile = with_encoder(PROFILES["smoke"], "mobilenet_v2-imagenet")
    results = run_experiment("fusion-levels", profile, [0], tmp_path / "fl.json")
    assert list(results["summary"]) == ["c5", "FPN c4-c5", "FPN c2-c5"]
    assert results["profile_config"]["encoder"] == "mobilenet_v2-imagenet"
    assert results["provenance"]["command"].endswith(
        "--encoder mobilenet_v2-imagenet --variants c5 'FPN c4-c5' 'FPN c2-c5'")


def test_parse_options():
    assert parse_options(["ss", "dap=conv3x3", "levels=c3,c5", "lr=false", "k=7"]) == {
        "ss": True, "dap": "conv3x3", "levels": ("c3", "c5"), "lr": False, "k": 7}
    with pytest.raises(ValueError, match="twice"):
        parse_options(["ss", "ss=heads"])


def test_runner_writes_resumes_and_records_provenance(tmp_path, no_camvid):
    out = tmp_path / "fl.json"
    profile = PROFILES["smoke"]
    first = run_experiment("fusion-levels", profile, [0], out, variants=["c5", "FPN c4-c5"])
    assert first["data"] == "SyntheticScenes"
    assert first["summary"]["c5"]["miou"]["n"] == 1
    assert set(first["provenance"]) >= {"device", "torch", "commit", "wall_seconds", "seeds",
                                        "threads", "command"}
    assert first["train_size"] == list(profile.size) and first["eval_size"] == [list(profile.size)]
    assert first["variants"] == variant_definitions(EXPERIMENTS["fusion-levels"])
    assert f"profile `smoke`, {profile.steps} steps on the `resnet` encoder, seeds 0;" in (
        provenance_line(first))
    trained_at = PRECISION_NAMES[first["runs"][0]["speed"]["precision"]]
    # the command trains at the file's precision whatever the machine's default, and only
    # the variants the file holds, named in table order and quoted for the shell
    assert first["provenance"]["command"] == (
        "python -m fusionlab experiment run fusion-levels --profile smoke --precision "
        f"{first['runs'][0]['speed']['precision']} --seeds 0 --variants c5 'FPN c4-c5'")
    assert shlex.split(first["provenance"]["command"])[-3:] == ["--variants", "c5", "FPN c4-c5"]
    for label, word in [("GCN, encoder's layout", '"GCN, encoder\'s layout"'),
                        ("a'$b", "'a'\"'\"'$b'"),
                        ("+DS (Smooth Network)", "'+DS (Smooth Network)'")]:
        assert store._shell_word(label) == word and shlex.split(word) == [label]
    assert first["runs"][0]["commit"] == first["provenance"]["commit"] == git_commit()
    torch_version = first["provenance"]["torch"]
    assert f"torch {torch_version}, {trained_at} throughout, " in provenance_line(first)
    mixed = copy.deepcopy(first)
    mixed["runs"][0]["speed"]["precision"] = "fp16"
    assert f", 1 run in float16, 1 run in {trained_at}, commit" in provenance_line(mixed)
    before = json.loads(out.read_text())["runs"]
    again = run_experiment("fusion-levels", profile, [0, 1], out, variants=["c5", "FPN c4-c5"])
    assert again["runs"][:2] == before  # finished runs are kept, not repeated
    assert again["summary"]["FPN c4-c5"]["seeds"] == [0, 1]
    assert again["provenance"]["command"].endswith("--seeds 0 1 --variants c5 'FPN c4-c5'")
    # a run made at an earlier commit keeps it, and the file lists the commits of its runs
    # (none of them was made at 2...)
    older = json.loads(out.read_text())
    older["runs"][0]["commit"] = "1" * 40
    older["provenance"]["commit"] = f"{'2' * 40}, {'1' * 40}"
    out.write_text(json.dumps(older))
    third = run_experiment("fusion-levels", profile, [0, 1, 2], out, variants=["c5"])
    assert third["provenance"]["commit"] == f"{'1' * 40}, {git_commit()}"
    assert [r["commit"] for r in third["runs"]] == ["1" * 40, *[git_commit()] * 4]
    with pytest.raises(ValueError, match="experiment"):
        run_experiment("nothing", profile, [0], out)


def test_a_run_interrupted_halfway_resumes_from_its_checkpoint(tmp_path, no_camvid,
                                                               monkeypatch):
    profile = PROFILES["smoke"]  # 8 steps, a checkpoint every 2 (below): saved at step 4
    monkeypatch.setattr(runner, "train_config",
                        lambda *a, **kw: runner_train_config(*a, checkpoint_every=2, **kw))
    plain = run_experiment("fusion-levels", profile, [0], tmp_path / "plain.json",
                           variants=["c5"])["runs"][0]
    step = fusionlab.train.train_step

    def dies_at_step_5(model, criterion, batch, run, *args):
        if run.step == 4:
            raise KeyboardInterrupt  # the process is killed after the checkpoint of step 4
        return step(model, criterion, batch, run, *args)

    monkeypatch.setattr(fusionlab.train, "train_step", dies_at_step_5)
    out, folder = tmp_path / "fl.json", tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        run_experiment("fusion-levels", profile, [0], out, variants=["c5"], checkpoints=folder)
    checkpoint = runner.run_checkpoint(folder, "fusion-levels", profile, "SyntheticScenes",
                                       "c5", 0)
    assert checkpoint.relative_to(folder).parts == ("fusion-levels-smoke-SyntheticScenes",
                                                    "fusion-levels--c5--0.pt")
    assert not out.exists()
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["step"] == 4 and saved["train_seconds"] > 0
    assert saved["commits"] == [git_commit()]  # the code that trained steps 1-4
    saved["train_seconds"] = 1000.0  # marks what only a resumed run can have counted
    saved["commits"] = ["1" * 40]  # as if the code changed before the run was resumed
    torch.save(saved, checkpoint)
    trained = []

    def counted(model, criterion, batch, run, *args):
        trained.append(run.step + 1)
        return step(model, criterion, batch, run, *args)

    monkeypatch.setattr(fusionlab.train, "train_step", counted)
    resumed = run_experiment("fusion-levels", profile, [0], out, variants=["c5"],
                             checkpoints=folder)["runs"][0]
    assert trained == [5, 6, 7, 8]  # steps 1-4 come from the checkpoint
    # the resumed run ends where the uninterrupted one does, and its time counts all 8 steps
    assert resumed["history"] == plain["history"]
    assert resumed["miou"] == plain["miou"] and resumed["iou"] == plain["iou"]
    assert resumed["train_seconds"] > 1000.0
    assert read_results(out)["provenance"]["wall_seconds"] > 1000.0  # all of the run's time
    # both codes that trained it are named, the run's and the file's
    assert "earlier_commits" not in plain
    assert (resumed["earlier_commits"], resumed["commit"]) == (["1" * 40], git_commit())
    assert read_results(out)["provenance"]["commit"] == f"{'1' * 40}, {git_commit()}"
    assert list(checkpoint.parent.iterdir()) == []  # a stored run keeps no checkpoint
    # a run stored before its checkpoint was removed (a kill in between): it goes at once
    checkpoint.write_bytes(b"left behind")
    run_experiment("fusion-levels", profile, [0], out, variants=["c5"], checkpoints=folder)
    assert not checkpoint.exists()
    # a results file on synthetic scenes takes no run on CamVid, and the reverse
    stored = json.loads(out.read_text())
    stored["data"] = "CamVid"
    out.write_text(json.dumps(stored))
    with pytest.raises(ResultsConflict, match="runs on CamVid, but this run has SyntheticScenes"):
        run_experiment("fusion-levels", profile, [1], out, variants=["c5"])
    with pytest.raises(ValueError, match="one data source"):
        merge_results("fusion-levels", [out, tmp_path / "plain.json"], tmp_path / "both.json",
                      variant_definitions(EXPERIMENTS["fusion-levels"]))


def test_stored_results_are_never_dropped(tmp_path, no_camvid):
    out = tmp_path / "fl.json"
    run_experiment("fusion-levels", PROFILES["smoke"], [0], out, variants=["c5"])
    stored = out.read_text()
    other_profile = PROFILES["smoke"].__class__(**{**PROFILES["smoke"].__dict__, "steps": 3})
    with pytest.raises(ResultsConflict, match="steps"):
        run_experiment("fusion-levels", other_profile, [0], out, variants=["c5"])
    with pytest.raises(ResultsConflict, match="fusion-levels"):
        run_experiment("exfuse", PROFILES["smoke"], [0], out, variants=["GCN"])
    assert out.read_text() == stored
    (tmp_path / "broken.json").write_text('{"experiment": ')
    with pytest.raises(ValueError, match="broken.json"):
        read_results(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="broken.json"):
        run_experiment("fusion-levels", PROFILES["smoke"], [0], tmp_path / "broken.json")
    # a file written before profiles named their encoder takes new seeds of the same
    # configuration, and refuses another encoder
    old = json.loads(stored)
    for key in ("encoder", "frozen_bn"):
        del old["profile_config"][key]
    out.write_text(json.dumps(old))
    more = run_experiment("fusion-levels", PROFILES["smoke"], [0, 1], out, variants=["c5"])
    assert more["summary"]["c5"]["seeds"] == [0, 1]
    with pytest.raises(ResultsConflict, match="encoder"):
        run_experiment("fusion-levels", with_encoder(PROFILES["smoke"], "mobilenet_v2"), [2],
                       out, variants=["c5"])


def test_a_dry_run_keeps_the_profiles_shapes_and_only_checks(monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DRY_RUN", "1")
    gpu = get_profile("gpu")
    assert gpu.name == "gpu" and gpu.size == PROFILES["gpu"].size == (360, 480)
    assert gpu.widths == PROFILES["gpu"].widths and gpu.num_workers == PROFILES["gpu"].num_workers
    assert gpu.steps == 2 and gpu.checks_only and not PROFILES["gpu"].checks_only
    assert PROFILES["smoke"].checks_only and not PROFILES["cpu"].checks_only


def test_costs_are_measured_at_the_reference_runs_size_in_every_profile_but_smoke(monkeypatch):
    gpu = with_encoder(PROFILES["gpu"], "mobilenet_v2-imagenet")
    measured = costs_profile(gpu)
    assert measured.size == PROFILES["cpu"].size == (120, 160)
    assert measured.batch_size == PROFILES["cpu"].batch_size
    # the reference runs' architecture, without their weights, whatever the chapter trains
    assert measured.encoder == "mobilenet_v2" and not measured.pretrained
    assert costs_profile(PROFILES["cpu"]).encoder == "mobilenet_v2"  # a from-scratch fallback
    assert costs_profile(PROFILES["smoke"]) is PROFILES["smoke"]
    # a dry run of the gpu profile measures what the real gpu run measures, on a dry-run batch
    monkeypatch.setenv("FUSIONLAB_DRY_RUN", "1")
    dry = costs_profile(get_profile("gpu"))
    assert dry.size == (120, 160) and dry.batch_size == 2 and dry.checks_only


def test_merge_results_of_parallel_runs(tmp_path, no_camvid):
    profile = PROFILES["smoke"]
    defs = variant_definitions(EXPERIMENTS["fusion-levels"])
    a = run_experiment("fusion-levels", profile, [0], tmp_path / "a.json", variants=["c5"])
    b = run_experiment("fusion-levels", profile, [0], tmp_path / "b.json",
                       variants=["FPN c4-c5"])
    merged = merge_results("fusion-levels", [tmp_path / "a.json", tmp_path / "b.json"],
                           tmp_path / "all.json", defs)
    assert merged["runs"] == a["runs"] + b["runs"]
    assert set(merged["summary"]) == {"c5", "FPN c4-c5"}
    assert merged["provenance"]["wall_seconds"] == pytest.approx(
        a["provenance"]["wall_seconds"] + b["provenance"]["wall_seconds"])
    assert json.loads((tmp_path / "all.json").read_text())["summary"] == merged["summary"]
    # a merged file lists each commit once, also after it is merged again with a part made at
    # a commit it already lists
    older = json.loads((tmp_path / "a.json").read_text())
    older["runs"][0]["commit"] = "1" * 40
    older["provenance"]["commit"] = f"{'0' * 40}, {'1' * 40}"  # no run of it made at 0...
    (tmp_path / "older.json").write_text(json.dumps(older))
    merge_results("fusion-levels", [tmp_path / "older.json", tmp_path / "b.json"],
                  tmp_path / "two.json", defs)
    c = run_experiment("fusion-levels", profile, [0], tmp_path / "c.json",
                       variants=["FPN c2-c5"])
    again = merge_results("fusion-levels", [tmp_path / "two.json", tmp_path / "c.json"],
                          tmp_path / "two.json", defs)
    assert again["provenance"]["commit"] == f"{'1' * 40}, {c['provenance']['commit']}"
    with pytest.raises(ValueError, match="in two files"):
        merge_results("fusion-levels", [tmp_path / "a.json", tmp_path / "a.json"],
                      tmp_path / "bad.json", defs)
    # the own run of a (variant, seed) beats a copy borrowed from another experiment, whichever
    # file comes first; two copies are as much a conflict as two own runs
    copy_of_a = json.loads((tmp_path / "a.json").read_text())
    copy_of_a["runs"][0].update(borrowed_from="other: c5", miou=0.99)
    (tmp_path / "copy.json").write_text(json.dumps(copy_of_a))
    for order in (["a.json", "copy.json"], ["copy.json", "a.json"]):
        kept = merge_results("fusion-levels", [tmp_path / f for f in order],
                             tmp_path / "kept.json", defs)
        assert kept["runs"] == a["runs"], order
        (tmp_path / "kept.json").unlink()
    with pytest.raises(ValueError, match="in two files"):
        merge_results("fusion-levels", [tmp_path / "copy.json", tmp_path / "copy.json"],
                      tmp_path / "bad.json", defs)
    with pytest.raises(ValueError, match="exfuse"):
        merge_results("exfuse", [tmp_path / "a.json"], tmp_path / "bad.json", defs)
    other = json.loads((tmp_path / "b.json").read_text())  # a refusal names what differs
    steps = other["profile_config"]["steps"]
    other["profile_config"]["steps"], other["data"] = steps + 1, "CamVid"
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError) as err:
        merge_results("fusion-levels", [tmp_path / "a.json", tmp_path / "other.json"],
                      tmp_path / "bad.json", defs)
    assert f"{tmp_path / 'other.json'} holds data 'CamVid' (the first file: " in str(err.value)
    assert f"(the first file vs this: {{'steps': ({steps}, {steps + 1})}})" in str(err.value)
    with pytest.raises(ResultsConflict, match="all.json"):
        merge_results("fusion-levels", [tmp_path / "a.json"], tmp_path / "all.json", defs)


def six_digits(x: float) -> float:
    """x rounded to 6 significant digits, through NumPy's decimal formatting."""
    return float(np.format_float_positional(x, precision=6, unique=False, fractional=False))


def test_runner_stores_per_class_boundary_f_and_the_loss_history(tmp_path, no_camvid,
                                                                  monkeypatch):
    trained = []

    def train_and_keep(*args, **kwargs):
        result = train(*args, **kwargs)
        result.metrics["boundary_f_per_class"][1] = math.nan  # as for a class absent in val
        trained.append(result)
        return result

    monkeypatch.setattr(runner, "train", train_and_keep)
    out = tmp_path / "fl.json"
    results = run_experiment("fusion-levels", PROFILES["smoke"], [0], out, variants=["c5"])
    (run,), (result,) = results["runs"], trained
    per_class = run["boundary_f_per_class"]
    assert list(per_class) == results["classes"]
    for name, value in zip(results["classes"], result.metrics["boundary_f_per_class"]):
        assert per_class[name] is None if math.isnan(value) else per_class[name] == value
    assert per_class[results["classes"][1]] is None
    assert '"boundary_f_per_class": {' in out.read_text() and ": null" in out.read_text()
    assert run["history"] == [{"step": h["step"], "loss": six_digits(h["loss"]),
                               "lr": six_digits(h["lr"])} for h in result.history]
    assert run["history"][-1]["step"] == PROFILES["smoke"].steps
    assert run["final_loss"] == result.history[-1]["loss"]


def test_old_runs_without_per_class_boundary_f_or_history_still_merge_and_report(
        tmp_path, no_camvid):
    profile = PROFILES["smoke"]
    defs = variant_definitions(EXPERIMENTS["fusion-levels"])
    new = run_experiment("fusion-levels", profile, [0], tmp_path / "new.json", variants=["c5"])
    old = json.loads(json.dumps(new))  # the same run as an earlier version stored it, seed 1
    for r in old["runs"]:
        del r["boundary_f_per_class"], r["history"]
        r["seed"], r["miou"] = 1, r["miou"] + 0.1
    assert "thread" not in new["provenance"]["device"]  # threads: provenance["threads"]
    old["provenance"]["device"] = (new["provenance"]["device"][:-1] + ", 1 threads) / "
                                   + new["provenance"]["device"][:-1] + ", 1 thread)")
    (tmp_path / "old.json").write_text(json.dumps(old))
    merged = merge_results("fusion-levels", [tmp_path / "old.json", tmp_path / "new.json"],
                           tmp_path / "all.json", defs)
    assert [("history" in r, "boundary_f_per_class" in r) for r in merged["runs"]] == [
        (False, False), (True, True)]
    miou = merged["summary"]["c5"]["miou"]
    assert miou["n"] == 2 and miou["mean"] == pytest.approx(new["runs"][0]["miou"] + 0.05)
    assert merged["summary"]["c5"]["boundary_f"]["n"] == 2
    assert results_table(merged).splitlines()[2].startswith("| c5 | 2 | ")
    assert "seeds 0, 1" in provenance_line(merged)
    assert merged["provenance"]["device"] == new["provenance"]["device"]  # one CPU, named once
    # resuming the mixed file trains nothing and keeps both runs as they are
    again = run_experiment("fusion-levels", profile, [0, 1], tmp_path / "all.json",
                           variants=["c5"])
    assert again["runs"] == merged["runs"]


def test_fallback_to_synthetic_scenes_is_announced(tmp_path, no_camvid):
    data = load_data(PROFILES["smoke"])
    assert data.is_fallback and data.source == "SyntheticScenes"
    assert len(data.train) == PROFILES["smoke"].train_images
    banner = data.banner()
    assert "NOT CamVid's" in banner and str(tmp_path / "none" / "camvid") in banner


def test_every_stored_result_matches_its_profile_as_defined_today():
    """A stored configuration differs from its named profile only in the fields a command
    changes (--steps, --encoder): a profile edited by mistake would show here."""
    files = sorted((Path(__file__).resolve().parents[1] / "fusionlab" / "results").glob("*.json"))
    assert files
    for path in files:
        stored = with_defaults(read_results(path)["profile_config"])
        named = with_defaults(dataclasses.asdict(PROFILES[stored["name"]]))
        differ = {k for k in named if named[k] != stored[k]}
        assert differ <= {"steps", "encoder"}, (path.name, differ)


def test_borrowed_variants_copy_the_runs_of_their_own_experiment(tmp_path, no_camvid,
                                                                  monkeypatch):
    """Chapter 6 trains only what no chapter stored: a borrowed variant's runs come from its
    own experiment's results of the same configuration, marked; a missing seed is trained; a
    stored variant defined otherwise is refused."""
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    profile = PROFILES["smoke"]
    source = run_experiment("fusion-levels", profile, [0], variants=["FPN c2-c5"])
    assert (tmp_path / "fusion-levels-smoke.json").is_file()
    out = tmp_path / "h2h.json"
    results = run_experiment("head-to-head", profile, [0, 1], out, variants=["FPN"])
    seed0, seed1 = results["runs"]
    assert seed0["borrowed_from"].startswith("fusion-levels: FPN c2-c5 (")
    assert seed0["variant"] == "FPN" and seed0["miou"] == source["runs"][0]["miou"]
    assert seed0["history"] == source["runs"][0]["history"]
    assert "borrowed_from" not in seed1  # not stored by its chapter: trained here
    # its provenance counts only its own run's time and says where the borrowed run's are
    own = results["provenance"]["wall_seconds"] / 60
    assert (f"{own:.0f} min of its own runs in all, 1 of its 2 runs borrowed from the stored "
            "results of fusion-levels, where their commits and times are;"
            in provenance_line(results))
    assert "of its own runs" not in provenance_line(source)
    assert seed0["borrowed_from"] == f"fusion-levels: FPN c2-c5 ({git_commit()})"
    assert results["provenance"]["commit"] == git_commit()  # its own run's, seed 1
    only = run_experiment("head-to-head", profile, [0, 1], tmp_path / "only.json",
                          variants=["FPN"], borrowed_only=True)
    assert [(r["seed"], "borrowed_from" in r) for r in only["runs"]] == [(0, True)]
    assert only["provenance"]["commit"] == git_commit()  # copies alone: the code that copied
    # a copy names its run's own commit; a run that records none, its file's commits
    lender = tmp_path / "fusion-levels-smoke.json"
    stored = json.loads(lender.read_text())
    stored["provenance"]["commit"] = f"{'1' * 40}, {'2' * 40}"
    stored["runs"][0]["commit"] = "3" * 40
    lender.write_text(json.dumps(stored))
    # a call that copies (seed 0 again) keeps the commits of the file's own runs (seed 1)
    made = json.loads(out.read_text())
    made["runs"] = [r for r in made["runs"] if r["seed"] == 1]
    made["runs"][0]["commit"] = "4" * 40
    made["provenance"]["commit"] = "5" * 40  # no run of it was made at 5...
    out.write_text(json.dumps(made))
    copied = run_experiment("head-to-head", profile, [0, 1], out, variants=["FPN"],
                            borrowed_only=True)
    assert [(r["seed"], r.get("borrowed_from")) for r in copied["runs"]] == [
        (1, None), (0, f"fusion-levels: FPN c2-c5 ({'3' * 40})")]
    assert copied["provenance"]["commit"] == "4" * 40
    del stored["runs"][0]["commit"]
    lender.write_text(json.dumps(stored))
    h2h = EXPERIMENTS["head-to-head"]
    config = with_defaults(dataclasses.asdict(profile))
    assert runner.borrowed_runs(h2h, config, run_precision(source["runs"][0]))[
        "FPN", 0]["borrowed_from"] == f"fusion-levels: FPN c2-c5 ({'1' * 40}, {'2' * 40})"
    trained_at = run_precision(source["runs"][0])
    assert set(runner.borrowed_runs(h2h, config, trained_at)) == {("FPN", 0)}
    other = next(p for p in ("fp32", "bf16") if p != trained_at)
    assert runner.borrowed_runs(h2h, config, other) == {}                  # another precision
    assert runner.borrowed_runs(h2h, with_defaults(dataclasses.asdict(dataclasses.replace(
        profile, steps=3))), trained_at) == {}                             # another configuration
    stored = json.loads((tmp_path / "fusion-levels-smoke.json").read_text())
    stored["variants"]["FPN c2-c5"]["options"]["levels"] = ["c4", "c5"]
    (tmp_path / "fusion-levels-smoke.json").write_text(json.dumps(stored))
    with pytest.raises(ResultsConflict, match="borrows it"):
        run_experiment("head-to-head", profile, [2], tmp_path / "other.json", variants=["FPN"])
    with pytest.raises(ValueError, match="not its variants"):
        Experiment("bad", "bad", {"a": Variant("fcn")}, borrowed={"b": ("fcn", "a")})


def test_the_head_to_head_borrows_each_papers_headline_model_as_defined_there():
    h2h = EXPERIMENTS["head-to-head"]
    definitions = variant_definitions(h2h)
    for label, (source, variant) in h2h.borrowed.items():
        assert definitions[label] == variant_definitions(EXPERIMENTS[source])[variant]
    assert sorted(h2h.borrowed) == ["DFN", "DUpsampling", "ExFuse", "FPN", "GFF+DFP"]
    assert all(base == "FPN" for base, v in h2h.pretrained if v in h2h.borrowed)


def test_per_class_gains_and_mean_intervals_pair_by_seed():
    results = toy_results()
    results["runs"].append({"variant": "b", "seed": 7, "miou": 0.9, "iou": [0.9, float("nan")],
                            "boundary_f": 0.3})  # seed 7 has no base: not paired
    results["runs"][3]["iou"] = [0.43, float("nan")]  # b, seed 0: Pole absent
    gains = class_gains(results, "a", "b")
    assert gains[0] == pytest.approx(np.mean([0.03, 0.02, 0.03]))
    assert gains[1] == pytest.approx(np.mean([0.52 / 2 - 0.25, 0.48 / 2 - 0.225]))
    mean, low, high = mean_interval(toy_results(), "a")
    assert mean == pytest.approx(0.45) and (low, high) == pytest.approx(
        t_interval([0.40, 0.50, 0.45]))
    with pytest.raises(ValueError, match="'z'"):
        class_gains(results, "a", "z")
    with pytest.raises(ValueError, match="'z'"):
        mean_interval(results, "z")


def test_per_class_gain_summary_pairs_seeds_and_reads_both_per_class_layouts():
    results = toy_results()
    for r in results["runs"]:  # the boundary F per class, stored as class name -> value
        r["boundary_f_per_class"] = {"Road": r["miou"], "Pole": None if r["seed"] == 2 else 0.1}
    results["runs"].append({**results["runs"][3], "seed": 7})  # b, seed 7: no base, not paired
    summary = class_gain_summary(results, "a", "b")
    assert summary["seeds"] == [0, 1, 2] and summary["gains"].shape == (3, 2)
    assert summary["gains"][:, 0] == pytest.approx([0.03, 0.02, 0.03])
    assert summary["mean"] == pytest.approx(class_gains(results, "a", "b"))
    low, high = t_interval([0.03, 0.02, 0.03])
    assert (summary["low"][0], summary["high"][0]) == pytest.approx((low, high))
    assert summary["real"].tolist() == [True, True]  # Pole: 0.015, 0.01, 0.015
    f = class_gain_summary(results, "a", "c", "boundary_f_per_class")
    assert f["gains"][:, 0] == pytest.approx([-0.01, 0.03, 0.0])
    assert f["gains"][:2, 1] == pytest.approx([0.0, 0.0]) and np.isnan(f["gains"][2, 1])
    assert f["mean"][1] == 0.0 and not f["real"][1]  # two seeds of zero: no spread, no gain
    with pytest.raises(ValueError, match="per-class metric"):
        class_gain_summary(results, "a", "b", "miou")
    with pytest.raises(KeyError, match="boundary_f_per_class"):
        class_gain_summary(toy_results(), "a", "b", "boundary_f_per_class")
    lonely = {**results, "runs": results["runs"][:6] + [{**results["runs"][6], "seed": 9}]}
    with pytest.raises(ValueError, match="share no seed"):
        class_gain_summary(lonely, "a", "c")  # c only with seed 9


def test_check_live_returns_the_metrics_and_refuses_what_trained_nothing():
    from types import SimpleNamespace as NS
    live = {name: NS(result=NS(metrics={"miou": m, "iou": [m, m]}))
            for name, m in (("a", 0.4), ("b", 0.1))}
    camvid, synthetic = (NS(classes=["Road", "Pole"], is_fallback=f) for f in (False, True))
    cpu, smoke = NS(name="cpu", checks_only=False), NS(name="smoke", checks_only=True)
    assert check_live(live, camvid, cpu, {"a": 0.3})["b"] == {"miou": 0.1, "iou": [0.1, 0.1]}
    with pytest.raises(ValueError, match=r"floors .*'b': 0.1"):
        check_live(live, camvid, cpu, {"a": 0.3, "b": 0.3})
    for data, profile in ((synthetic, cpu), (camvid, smoke)):  # nothing real to reach there
        assert check_live(live, data, profile, {"b": 0.3})["b"]["miou"] == 0.1
    with pytest.raises(KeyError, match="'z'"):
        check_live(live, camvid, cpu, {"z": 0.3})
    broken = {"a": NS(result=NS(metrics={"miou": 1.2, "iou": [1.0]}))}
    with pytest.raises(ValueError, match="a: mIoU 1.2 with 1 per-class IoUs"):
        check_live(broken, camvid, smoke, {})


def test_gains_table_without_results_says_so():
    experiment = EXPERIMENTS["dfn"]
    assert gains_table(None, experiment) == ("The reference results of dfn are not stored yet: "
                                             "no gains to show.")


def test_costs_table_in_the_books_units():
    costs = {"a": {"params": 2_500_000, "gflops": 0.412, "fp32_ms": 11.84, "bf16_ms": 17.6,
                   "memory_mb": 296.7, "step_ms": 412.4, "threads": 2}}
    lines = costs_table(costs).splitlines()
    assert lines[0].startswith("| model | params (M) | GFLOPs | fp32 (ms) | bf16 (ms) |")
    assert lines[2] == "| a | 2.50 | 0.41 | 11.8 | 17.6 | 297 | 412 |"


def test_the_bfloat16_sentence_reads_a_gap_within_the_tolerance_as_a_tie():
    costs = {"A": {"fp32_ms": 10.0, "bf16_ms": 8.0}, "B": {"fp32_ms": 34.2, "bf16_ms": 34.0},
             "C": {"fp32_ms": 11.7, "bf16_ms": 13.1}, "D": {"fp32_ms": 18.6, "bf16_ms": 23.9},
             "E": {"fp32_ms": 20.0, "bf16_ms": 19.0}}  # exactly 5% below: a tie
    speed = precision_speed(costs)
    assert speed == {"faster": ["A"], "tie": ["B", "E"], "slower": ["C", "D"]}
    assert precision_speed_text(speed) == (
        "On this CPU bfloat16's latency is more than 5% below float32's for A; within 5% of it "
        "for B and E; more than 5% above it for C and D.")
    assert precision_speed_text(precision_speed({k: costs[k] for k in "CD"})) == (
        "On this CPU bfloat16's latency is more than 5% above float32's for every model.")
    assert precision_speed_text(precision_speed({"B": costs["B"]}, 0.001), 0.001) == (
        "On this CPU bfloat16's latency is more than 0.1% below float32's for every model.")
    for tolerance in (0.0, 1.0):
        with pytest.raises(ValueError, match="tolerance"):
            precision_speed(costs, tolerance)
    with pytest.raises(ValueError, match="positive milliseconds"):
        precision_speed({"A": {"fp32_ms": 10.0, "bf16_ms": float("nan")}})
    with pytest.raises(ValueError, match="at least one model"):
        precision_speed_text({"faster": [], "tie": [], "slower": []})


def test_a_stored_command_trains_exactly_the_runs_its_file_holds():
    """Per group of variants run at the same seeds, one call naming them; ``--variants`` left
    out only for every variant on an encoder trained from scratch (its default)."""
    variants = {label: {} for label in ("a", "b c", "d")}
    cpu = stored_config(PROFILES["cpu"])
    def runs(*pairs):
        return [{"variant": v, "seed": s, "speed": {"precision": "fp32"}} for v, s in pairs]
    base = "python -m fusionlab experiment run x --profile cpu --precision fp32"
    assert reproduce_command("x", cpu, variants, runs(("a", 0), ("b c", 0), ("d", 0))) == (
        f"{base} --seeds 0")
    assert reproduce_command("x", cpu, variants, runs(
        ("a", 0), ("a", 1), ("b c", 0), ("d", 1), ("d", 0), ("a", 2))) == (
        f"{base} --seeds 0 1 2 --variants a && {base} --seeds 0 --variants 'b c' && "
        f"{base} --seeds 0 1 --variants d")
    imagenet = stored_config(with_encoder(dataclasses.replace(PROFILES["cpu"], steps=3000),
                                          "mobilenet_v2-imagenet"))
    assert reproduce_command("x", imagenet, variants, runs(("a", 0), ("b c", 0), ("d", 0))) == (
        f"{base} --seeds 0 --encoder mobilenet_v2-imagenet --steps 3000 --variants a 'b c' d")
    assert reproduce_command("x", cpu, variants, []) == (
        "python -m fusionlab experiment run x --profile cpu")
    # runs of two precisions: one call per precision, each naming its own
    mixed = runs(("a", 0), ("b c", 0), ("d", 0)) + [
        {"variant": v, "seed": 1, "speed": {"precision": "bf16"}} for v in ("a", "d")] + [
        {"variant": "b c", "seed": 2}]  # stored before runs recorded their precision
    plain = "python -m fusionlab experiment run x --profile cpu"
    assert reproduce_command("x", cpu, variants, mixed) == (
        f"{plain} --precision fp32 --seeds 0 && "
        f"{plain} --precision bf16 --seeds 1 --variants a d && "
        f"{plain} --seeds 2 --variants 'b c'")


def test_a_files_commits_are_those_of_its_own_runs():
    own, older, copy = {"commit": "d"}, {}, {"commit": "x", "borrowed_from": "e: v (x)"}
    assert runs_commits([copy], [], "c") == "c"                  # copies alone: who copied
    assert runs_commits([copy, own], ["c"], "e") == "d"          # not a list nothing ran at
    assert runs_commits([older, own, own], ["a", "b"], "e") == "a, b, d"
    assert runs_commits([older, {"commit": "a"}], ["a", "b"], "e") == "a, b"
    resumed = {"commit": "d", "earlier_commits": ["f", "g"]}  # begun at f, resumed at g and d
    assert runs_commits([{"commit": "g"}, resumed], [], "e") == "g, f, d"


def test_every_stored_command_parses_to_the_runs_of_its_file(monkeypatch):
    """Typed as printed, each stored results file's command asks ``experiment run`` for its
    (variant, seed) pairs exactly, at its configuration and each run's precision."""
    monkeypatch.delenv("FUSIONLAB_DRY_RUN", raising=False)
    calls = []
    def record(name, profile, seeds, out, variants, **options):
        calls.append((name, profile, seeds, variants, options["precision"]))
        return {"summary": {}}
    monkeypatch.setattr(cli, "run_experiment", record)
    files = sorted((Path(__file__).resolve().parents[1] / "fusionlab" / "results").glob("*.json"))
    for path in files:
        results, calls[:] = read_results(path), []
        assert results["provenance"]["command"] == reproduce_command(  # as the code writes it
            results["experiment"], results["profile_config"], results["variants"],
            results["runs"]), path.name
        for command in results["provenance"]["command"].split(" && "):
            words = shlex.split(command)
            assert words[:5] == ["python", "-m", "fusionlab", "experiment", "run"], path.name
            cli.main(words[4:])
        asked = set()
        for name, profile, seeds, chosen, precision in calls:
            experiment = EXPERIMENTS[name]  # the runner's default variants
            chosen = chosen or ((experiment.pretrained_variants if profile.pretrained else [])
                                or list(experiment.variants))
            asked |= {(v, s, precision) for v in chosen for s in seeds}
            assert name == results["experiment"], path.name
            assert with_defaults(stored_config(profile)) == with_defaults(
                results["profile_config"]), path.name
        # each run at its own precision, or the machine's choice for a run that records none
        assert asked == {(r["variant"], r["seed"], run_precision(r) or "auto")
                         for r in results["runs"]}, path.name


def test_a_variants_options_read_as_a_table_cell():
    variant = Variant("exfuse", {"ss": True, "blocks": (2, 2, 2, 2), "kernel": 7})
    assert variant.options_text() == "ss, blocks=(2, 2, 2, 2), kernel=7"
    assert variant.options_text(skip={"blocks"}) == "ss, kernel=7"
    assert Variant("fpn").options_text() == ""


def test_variants_table_counts_each_built_model_and_describes_its_rows():
    from fusionlab.bench import count_flops, count_parameters
    from fusionlab.experiments import variants_table
    profile = PROFILES["smoke"]
    context = BuildContext(11, profile, SyntheticScenes(4, profile.size))
    variants = {"FPN": Variant("fpn"), "FPN c4-c5": Variant("fpn", {"levels": ("c4", "c5")})}
    table, costs = variants_table(variants, context, decoder=True)
    lines = table.splitlines()
    assert lines[0] == ("| variant | options | decoder GFLOPs | GFLOPs (1 image) | "
                        "parameters |")
    assert [line.split(" | ")[1] for line in lines[2:]] == ["(none)", "levels=('c4', 'c5')"]
    for label, variant in variants.items():
        model = build_model(variant, context)
        gflops = count_flops(model, profile.size) / 1e9
        assert costs[label]["gflops"] == pytest.approx(gflops)
        assert costs[label]["params"] == count_parameters(model)
        assert costs[label]["decoder_gflops"] == pytest.approx(
            gflops - count_flops(model.encoder, profile.size) / 1e9)
        assert f"| {costs[label]['params']:,} |" in table
    assert costs["FPN"]["decoder_gflops"] < costs["FPN"]["gflops"]
    table, costs = variants_table(variants, context, lambda label, v, model: {
        "stride": model.encoder.strides["c5"]})
    assert table.splitlines()[0] == "| variant | stride | GFLOPs (1 image) | parameters |"
    assert "decoder_gflops" not in costs["FPN"]
    with pytest.raises(ValueError, match=r"columns \['a'\], 'FPN c4-c5' has \['b'\]"):
        variants_table(variants, context, lambda label, v, model: {"a" if label == "FPN" else
                                                                   "b": 1})


def test_the_auxiliary_losses_text_names_the_terms_training_uses():
    from fusionlab.experiments import auxiliary_losses_text
    profile = PROFILES["smoke"]
    context = BuildContext(11, profile, SyntheticScenes(4, profile.size))
    weight = runner_train_config(profile).aux_weight
    fpn = build_model(Variant("fpn"), context)
    assert auxiliary_losses_text(fpn, profile) == "none"
    exfuse = build_model(Variant("exfuse", {"ss": True}), context)     # no terms of its own:
    assert not hasattr(exfuse, "aux_losses")                           # the profile's weight
    assert auxiliary_losses_text(exfuse, profile) == ", ".join(
        f"ss_{lv} ({weight:g})" for lv in ("c2", "c3", "c4", "c5"))
    dfn = build_model(Variant("dfn", {"border": True, "ds": True}), context).train()
    text = auxiliary_losses_text(dfn, profile)
    assert "border_c2 (0.1)" in text and dfn.training                  # the mode is restored
