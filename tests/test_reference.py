"""What chapters read from stored reference results: runs, loss curves, the status and the
opening section."""

import numpy as np
import pytest

from fusionlab.experiments.reference import (final_loss, loss_curve, reference_section,
                                             reference_status, stored_runs)


def _history(scale):
    return [{"step": s, "loss": scale / s} for s in range(10, 110, 10)]   # 10 entries


def _results():
    runs = [{"variant": "a", "seed": 0, "miou": 0.4, "final_loss": 0.9, "history": _history(1)},
            {"variant": "b", "seed": 0, "miou": 0.5, "final_loss": 0.7},
            {"variant": "a", "seed": 1, "miou": 0.6, "final_loss": 0.8, "history": _history(3)}]
    summary = {"a": {"seeds": [0, 1]}, "b": {"seeds": [0]}}
    return {"runs": runs, "summary": summary}


def test_stored_runs_are_a_variants_runs_in_file_order():
    results = _results()
    assert [r["seed"] for r in stored_runs(results, "a")] == [0, 1]
    assert stored_runs(results, "z") == [] and stored_runs(None, "a") == []


def test_the_loss_curve_averages_the_seeds_and_the_final_loss_its_last_share():
    curve = loss_curve(_results(), "a")
    assert [h["step"] for h in curve] == list(range(10, 110, 10))
    assert [h["loss"] for h in curve] == pytest.approx([2 / s for s in range(10, 110, 10)])
    # mean of 1/s and 3/s, as a training history
    assert final_loss(_results(), "a") == pytest.approx(2 / 100)        # steps > 90: step 100
    assert final_loss(_results(), "a", share=0.25) == pytest.approx(np.mean([2 / 80, 2 / 90,
                                                                             2 / 100]))
    assert loss_curve(_results(), "b") is None and final_loss(_results(), "b") is None
    assert final_loss(None, "a") is None
    with pytest.raises(ValueError, match="share"):
        final_loss(_results(), "a", share=0)
    uneven = _results()
    uneven["runs"][2]["history"] = _history(3)[:-1]
    with pytest.raises(ValueError, match="different steps"):
        loss_curve(uneven, "a")


def test_status_and_section_say_what_is_stored_and_what_is_not():
    results = _results()
    assert reference_status(results, ["a", "b"]) == "2 of the 2 variants, all of them"
    assert reference_status(results, ["a", "c", "d"]) == ("1 of the 3 variants; still to run: "
                                                          "c, d")
    assert reference_status(None, ["a"]) == "0 of the 1 variants; still to run: a"
    assert reference_status(results, ["a", "b"], seeds=2) == (
        "2 of the 2 variants, all of them; at fewer than 2 seeds so far: b (1)")
    assert reference_status(results, ["a", "b", "c"], seeds=1) == (
        "2 of the 3 variants; still to run: c")
    assert reference_section(None, ["a"]) == ("No reference results found: run the command "
                                              "above to produce them.")
    assert reference_section(None, ["a"], "python -m fusionlab experiment run x") == (
        "No reference results found; they are made by `python -m fusionlab experiment run x`.")


def test_the_section_of_stored_results_is_their_provenance_then_their_table():
    from fusionlab.experiments import load_results, provenance_line, results_table
    stored = load_results("gff", "cpu")
    section = reference_section(stored, ["GFF", "PSPNet"])
    assert section == (provenance_line(stored) + "\n\n"
                       + results_table(stored, variants=["GFF", "PSPNet"]))
    assert section.index("| GFF |") < section.index("| PSPNet |")     # in the order asked


def test_live_summary_is_one_aligned_line_per_run():
    from types import SimpleNamespace

    from fusionlab.experiments import live_summary

    def run(miou, seconds):
        metrics = {"miou": miou, "pixel_accuracy": 0.9, "boundary_f": 0.25}
        return SimpleNamespace(result=SimpleNamespace(metrics=metrics, train_seconds=seconds))

    text = live_summary({"FCN": run(0.4, 12.4), "FPN c2-c5": run(0.5125, 30)})
    assert text.splitlines() == [
        "FCN        mIoU 0.400  pixel accuracy 0.900  boundary F 0.250  (12 s of training)",
        "FPN c2-c5  mIoU 0.512  pixel accuracy 0.900  boundary F 0.250  (30 s of training)"]


def test_glue_gains_glues_each_comparisons_gain_and_verdict(monkeypatch):
    from fusionlab.experiments import gain_text, gain_verdict
    from fusionlab.experiments import reference as reference_module
    glued = {}
    monkeypatch.setattr(reference_module, "glue",
                        lambda name, value, display=True: glued.update({name: value}))
    runs = [{"variant": v, "seed": s, "miou": m, "boundary_f": m / 2, "iou": [m]}
            for v, s, m in [("a", 0, 0.4), ("a", 1, 0.5), ("b", 0, 0.5), ("b", 1, 0.55)]]
    results = {"runs": runs, "classes": ["Road"], "thin_classes": []}
    reference_module.glue_gains(results, {"x": ("a", "b"), "x_bf": ("a", "b", "boundary_f")})
    assert glued == {"ref_x": gain_text(results, "a", "b"),
                     "ref_x_bf": gain_text(results, "a", "b", "boundary_f")}
    assert glued["ref_x"].startswith("+7.5 points") and glued["ref_x_bf"] != glued["ref_x"]
    glued.clear()
    reference_module.glue_gains(None, {"x": ("a", "b")}, verdicts=True)
    assert glued == {"ref_x": gain_text(None, "a", "b"), "verdict_x": gain_verdict(None, "a", "b")}
    assert "missing" in glued["ref_x"] and "cannot be read yet" in glued["verdict_x"]
    with pytest.raises(ValueError, match=r"\(base, variant\)"):
        reference_module.glue_gains(results, {"x": ("a",)})


def test_show_footing_displays_the_table_and_glues_the_reading(monkeypatch):
    import IPython.display
    from fusionlab.experiments import EXPERIMENTS, footing_reading
    from fusionlab.experiments import reference as reference_module
    shown, glued = [], {}
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monkeypatch.setattr(reference_module, "glue",
                        lambda name, value, display=True: glued.update({name: value}))
    experiment = EXPERIMENTS["fusion-levels"]
    reference_module.show_footing(experiment)
    table, reading = footing_reading(experiment)
    assert [s.data for s in shown] == [table] and glued == {"footing_reading": reading}
    assert table.startswith("|") and reading


def test_histories_seed_means_and_mean_text_read_the_stored_runs():
    from fusionlab.experiments.reference import mean_text, run_histories, seed_mean
    results = _results()
    assert run_histories(results, "a") == [_history(1), _history(3)]
    assert run_histories(results, "b") == [] and run_histories(None, "a") == []
    assert seed_mean(results, "a") == pytest.approx(0.5)
    assert seed_mean(results, "a", seeds=[1]) == pytest.approx(0.6)
    assert seed_mean(results, "a", seeds=[7]) is None and seed_mean(None, "a") is None
    results["summary"]["a"]["miou"] = {"mean": 0.5, "std": 0.1}
    assert mean_text(results, "a") == "0.500 (mean of 2 seeds)"
    assert mean_text(results, "z") is None and mean_text(None, "a") is None


def _schedule(offset, seeds=(0, 1, 2)):
    """A results file of variants "base" and "new" whose mIoU is 0.4 + offset (+ 0.02 for
    "new") plus a seed-dependent wobble, each with a loss history."""
    runs = [{"variant": v, "seed": s, "miou": 0.4 + offset + (0.02 if v == "new" else 0)
             + 0.001 * s * (1 + (v == "new")), "history": _history(1 + offset)}
            for s in seeds for v in ("base", "new")]
    return {"runs": runs, "summary": {v: {"seeds": list(seeds)} for v in ("base", "new")}}


def test_a_schedule_comparison_pairs_the_seeds_every_schedule_ran():
    from fusionlab.experiments.reference import schedule_comparison
    compared = schedule_comparison({1500: _schedule(0), 3000: _schedule(0.1, (0, 1))},
                                   "base", "new")
    assert compared["seeds"] == [0, 1]
    assert compared["miou"][1500]["base"] == pytest.approx(100 * (0.4 + 0.0005))
    assert compared["miou"][3000]["new"] == pytest.approx(100 * (0.52 + 0.001))
    assert compared["gap"][1500] == pytest.approx(0.02 + 0.001)          # all 3 seeds paired
    assert compared["gap"][3000] == pytest.approx(0.02 + 0.0005)
    assert compared["table"].startswith("Seeds 0, 1, mIoU in %:\n\n| schedule | base mIoU |")
    assert "| 3000 steps | 50.0 | 52.1 |" in compared["table"]
    assert list(compared["curves"]) == ["base, 1500 steps", "new, 1500 steps",
                                        "base, 3000 steps", "new, 3000 steps"]
    with pytest.raises(ValueError, match="no seed ran both"):
        schedule_comparison({1500: _schedule(0, (0,)), 3000: _schedule(0, (1,))}, "base", "new")


def test_pareto_points_pair_each_cost_with_the_mean_and_interval_in_percent():
    from fusionlab.experiments.reference import pareto_points
    from fusionlab.experiments.stats import mean_interval
    results = _schedule(0)
    points = pareto_points(results, {"base": 1.5, "new": 2.0, "never run": 3.0})
    assert list(points) == ["base", "new"]
    mean, low, high = mean_interval(results, "new")
    assert points["new"] == pytest.approx((2.0, 100 * mean, 100 * low, 100 * high))
    assert low < mean < high
    assert pareto_points(None, {"base": 1.5}) == {}
