"""Learning curves and the two footings (from scratch, ImageNet encoder) as the chapters read
them from stored results."""

import json
from collections import Counter

import pytest
from scipy import stats

from fusionlab.experiments import store
from fusionlab.experiments.curves import (curve_summary, learning_curve, load_footings,
                                          reference_schedule)
from fusionlab.experiments import report
from fusionlab.experiments.report import curves_table, doubling_text, footing_table
from fusionlab.experiments.spec import Experiment, PaperNumber, Variant


def _store(folder, file, runs):
    (folder / file).write_text(json.dumps({
        "experiment": "fusion-levels", "profile_config": {"name": "cpu"},
        "runs": [{"variant": v, "seed": s, "miou": m} for v, s, m in runs]}))


def test_learning_curve_reads_one_file_per_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    monkeypatch.setattr(store, "packaged_results", lambda name: None)  # only these files
    enc = "mobilenet_v2-imagenet"
    _store(tmp_path, f"fusion-levels-cpu-{enc}-750steps.json",
           [("FPN c2-c5", 0, 0.50), ("FPN c2-c5", 1, 0.52), ("c5", 0, 0.1)])
    _store(tmp_path, f"fusion-levels-cpu-{enc}.json",  # the profile's own 1500 steps
           [("FPN c2-c5", 1, 0.57), ("FPN c2-c5", 0, 0.54)])
    _store(tmp_path, "fusion-levels-cpu-3000steps.json", [("FPN c2-c5", 0, 0.9)])  # ResNet
    curve = learning_curve("fusion-levels", "FPN c2-c5", "cpu", enc)
    assert curve == {750: {0: 0.50, 1: 0.52}, 1500: {0: 0.54, 1: 0.57}}
    assert list(curve[1500]) == [0, 1]  # seeds in order
    assert learning_curve("fusion-levels", "FPN c2-c5", "cpu", "resnet") == {3000: {0: 0.9}}
    with pytest.raises(ValueError, match="profile"):
        learning_curve("fusion-levels", "FPN c2-c5", "laptop")


def test_curve_summary_pairs_each_schedule_with_the_one_before():
    curve = {750: {0: 0.50, 1: 0.52, 2: 0.47}, 1500: {0: 0.54, 1: 0.57, 2: 0.50},
             3000: {0: 0.60}}
    rows = curve_summary(curve)
    assert [r["steps"] for r in rows] == [750, 1500, 3000]
    assert rows[0]["gain"] is None and rows[2]["gain"] is None  # one shared seed: no interval
    gains = [0.04, 0.05, 0.03]
    assert rows[1]["gain"] == pytest.approx(0.04)
    half = stats.t.ppf(0.975, 2) * 0.01 / 3 ** 0.5
    assert rows[1]["ci"] == pytest.approx((0.04 - half, 0.04 + half))
    assert rows[1]["gain_seeds"] == [0, 1, 2] and rows[1]["mean"] == pytest.approx(
        sum(curve[1500].values()) / 3)
    assert sum(gains) / 3 == pytest.approx(rows[1]["gain"])


def test_curves_table_rows_per_schedule_in_percent():
    curves = {"ImageNet": {750: {0: 0.50, 1: 0.52, 2: 0.47}, 1500: {0: 0.54, 1: 0.57, 2: 0.50}},
              "scratch": {1500: {0: 0.40, 1: 0.42}}}
    lines = curves_table(curves).splitlines()
    assert lines[0].startswith("| steps | ImageNet: mIoU (%) | seeds | gain over half the steps")
    assert lines[2] == "| 750 | 49.7 ± 2.5 | 3 |  |  |  |  |"   # the missing curve: 3 blank cells
    assert lines[3].startswith("| 1500 | 53.7 ± 3.5 | 3 | +4.0 [+1.5, +6.5] | 41.0 ± 1.4 | 2 |")


def test_doubling_text_pairs_a_schedule_with_half_of_it():
    curve = {750: {0: 0.50, 1: 0.52, 2: 0.47}, 1500: {0: 0.54, 1: 0.57, 2: 0.50},
             6000: {0: 0.6, 1: 0.6}}
    assert doubling_text(curve, 1500) == "+4.0 points (95% interval +1.5 to +6.5)"
    assert doubling_text(curve, 3000) == "not measured yet"
    assert doubling_text(curve, 6000) == "not measured yet"  # 3000 is missing


def test_footing_table_sets_both_footings_side_by_side():
    def results(gains):  # variant "b" beats "a" by the given gains, one seed each
        runs = [{"variant": "a", "seed": s, "miou": 0.5} for s in range(len(gains))]
        runs += [{"variant": "b", "seed": s, "miou": 0.5 + g} for s, g in enumerate(gains)]
        return {"experiment": "x", "runs": runs}
    experiment = Experiment("x", "x", {"a": Variant("fpn"), "b": Variant("fcn")},
                            paper={"b": PaperNumber(1.5, "Table 1", base="a")},
                            pretrained=(("a", "b"),))
    lines = footing_table(experiment, results([0.01, 0.02, 0.03]), None).splitlines()
    assert lines[0] == ("| comparison | paper | from scratch [95% CI] | "
                        "ImageNet encoder [95% CI] |")
    assert lines[2] == "| b vs a | +1.5 | +2.0 [-0.5, +4.5], 3 seeds: noise | not run |"
    lines = footing_table(experiment, None, results([0.03, 0.04, 0.05])).splitlines()
    assert lines[2].endswith("| not run | +4.0 [+1.5, +6.5], 3 seeds: real gain |")


def test_the_reference_schedule_is_the_first_whose_doubling_adds_little():
    curve = {750: {0: 0.55, 1: 0.55}, 1500: {0: 0.60, 1: 0.61},
             3000: {0: 0.63, 1: 0.63}, 6000: {0: 0.635, 1: 0.64}}
    assert reference_schedule(curve) == 3000  # +2.5 points, then +0.75
    assert reference_schedule(curve, converged_gain=0.03) == 1500
    assert reference_schedule({750: {0: 0.5, 1: 0.5}, 1500: {0: 0.6, 1: 0.6}}) is None


def test_load_footings_reads_the_imagenet_runs_at_the_schedule_the_curve_settles(tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    monkeypatch.setattr(store, "packaged_results", lambda name: None)  # only these files
    enc = "mobilenet_v2-imagenet"
    _store(tmp_path, "fusion-levels-cpu.json", [("c5", 0, 0.3)])  # from scratch
    assert load_footings("fusion-levels") == (store.load_results("fusion-levels"), None, None)
    for steps, gain in ((750, 0.0), (1500, 0.05), (3000, 0.07), (6000, 0.075)):
        _store(tmp_path, f"fusion-levels-cpu-{enc}-{steps}steps.json",
               [("FPN c2-c5", s, 0.5 + gain + 0.01 * s) for s in range(3)])
    scratch, pretrained, steps = load_footings("fusion-levels")
    assert steps == 3000  # 3000 -> 6000 adds 0.5 points, 1500 -> 3000 adds 2
    assert scratch["runs"] == [{"variant": "c5", "seed": 0, "miou": 0.3}]
    assert pretrained["runs"][0]["miou"] == pytest.approx(0.57)


def test_footing_reading_says_each_comparison_and_what_is_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    monkeypatch.setattr(store, "packaged_results", lambda name: None)
    enc = "mobilenet_v2-imagenet"
    for steps, gain in ((1500, 0.05), (3000, 0.07), (6000, 0.075)):
        _store(tmp_path, f"fusion-levels-cpu-{enc}-{steps}steps.json",
               [("FPN c2-c5", s, 0.5 + gain + 0.01 * s) for s in range(3)]
               + [("c5", s, 0.4 + 0.02 * s) for s in range(3)] * (steps == 3000))
    experiment = Experiment("fusion-levels", "t", {v: Variant("fpn") for v in
                                                   ("c5", "FPN c4-c5", "FPN c2-c5")},
                            pretrained=(("c5", "FPN c2-c5"), ("FPN c4-c5", "FPN c2-c5")))
    table, reading = report.footing_reading(experiment)
    assert table.splitlines()[2].startswith("| FPN c2-c5 vs c5 |  | not run | +16.0 [")
    first, second = reading.split(". On")
    assert first.startswith("On the ImageNet encoder (3000 steps), FPN c2-c5 against c5: +16.0 "
                            "points (95% interval")
    assert first.endswith("which is a real gain")
    assert second == " the ImageNet encoder, FPN c2-c5 against FPN c4-c5 is not run yet."


def test_the_curves_mean_and_the_schedule_sentence_read_a_curve():
    curve = {750: {0: 0.55, 1: 0.56}, 1500: {0: 0.60, 1: 0.61},
             3000: {0: 0.63, 1: 0.63}, 6000: {0: 0.635, 1: 0.64}}
    assert report.curve_mean_text(curve, 1500) == "60.5%"
    assert report.curve_mean_text(curve, 12000) == "not measured yet"
    assert report.schedule_sentence(curve).startswith(
        "So 1500 steps leave even the pretrained encoder short of where its training "
        "flattens")
    assert "train for 3000 steps" in report.schedule_sentence(curve)
    assert report.schedule_sentence(curve, short=3000).startswith(
        "So 3000 steps are long enough for the pretrained encoder (doubling them adds at most "
        "1.5 points)")
    assert report.schedule_sentence({750: {0: 0.5}}).startswith("No measured doubling adds")


def test_the_footings_overview_is_every_chapters_table_under_its_name(tmp_path, monkeypatch):
    from types import SimpleNamespace
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    monkeypatch.setattr(store, "packaged_results", lambda name: None)
    _store(tmp_path, "fusion-levels-cpu.json",
           [("c5", s, 0.4) for s in range(3)] + [("FPN c2-c5", s, 0.45 + 0.01 * s)
                                                 for s in range(3)])
    experiment = Experiment("fusion-levels", "t", {v: Variant("fpn") for v in
                                                   ("c5", "FPN c2-c5")},
                            pretrained=(("c5", "FPN c2-c5"),))
    chapters = [SimpleNamespace(number=1, experiments=(experiment,)),
                SimpleNamespace(number=2, experiments=(experiment,))]
    lines = report.footings_overview(chapters).splitlines()
    own = footing_table(experiment, *load_footings(experiment.name)[:2]).splitlines()
    assert lines[:2] == own[:2]                                         # one header
    assert lines[2] == "| **chapter 1: fusion-levels** |  |  |  |"
    assert lines[3] == own[2] and lines[3].startswith("| FPN c2-c5 vs c5 |  | +6.0 [")
    assert lines[4] == "| **chapter 2: fusion-levels** |  |  |  |" and len(lines) == 6
    # the same rows counted by verdict, per footing
    assert report.footings_tally(chapters) == {"scratch": "2 real gains",
                                                "pretrained": "none run yet (2 not run)"}
    _store(tmp_path, "fusion-levels-cpu.json",
           [("c5", s, 0.4) for s in range(3)] + [("FPN c2-c5", s, g) for s, g in
                                                 enumerate((0.38, 0.41, 0.40))])
    assert report.footings_tally(chapters[:1])["scratch"] == "1 not distinguishable from zero"
    assert report._tally_text(Counter({"real gain": 1, "real loss": 2, "noise": 3})) == (
        "1 real gain, 2 real losses and 3 not distinguishable from zero")
