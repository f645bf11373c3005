"""The queue of reference runs: which runs the footing comparisons need, in which order, a
queue of real processes that trains them and merges each into the stored results, and the
command that shows what is stored."""

import dataclasses
import subprocess

import pytest
import torch

import fusionlab.train
from fusionlab.experiments import EXPERIMENTS, PROFILES, read_results, runner, with_encoder
from fusionlab.experiments.cli import main
from fusionlab.experiments.curves import footing_steps
from fusionlab.experiments.profiles import train_config
from fusionlab.experiments.queue import (FIRST_SEEDS, REFERENCE_PRECISION, SEEDS, Job,
                                         configuration_dir, footing_jobs, footing_profile,
                                         job_command, merge_part, pending_jobs,
                                         refresh_borrowers, run_queue)
from fusionlab.experiments.report import results_table
from fusionlab.experiments.store import stored_path


@pytest.fixture
def no_camvid(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")


@pytest.fixture
def results(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(folder))
    return folder


def test_the_footing_needs_every_pretrained_variant_for_every_seed():
    jobs = footing_jobs()
    expected = {(e.name, v, s) for e in EXPERIMENTS.values() for v in e.pretrained_variants
                for s in SEEDS}
    assert {(j.experiment, j.variant, j.seed) for j in jobs} == expected
    assert len(jobs) == len(expected)                                   # nothing twice
    head = {j.variant for j in jobs if j.experiment == "head-to-head"}  # borrowed ones too
    assert head == set(EXPERIMENTS["head-to-head"].pretrained_variants)
    assert {"FPN", "GFF+DFP + borders"} <= head


def test_every_run_chapter_6_borrows_is_on_the_footing_queue():
    jobs = {(j.experiment, j.variant) for j in footing_jobs()}
    head = EXPERIMENTS["head-to-head"]
    assert head.borrowed and all(pair in jobs for pair in head.borrowed.values())
    # each paper's own model: DUpsampling fuses c2 (its Table 2), not Table 1's unfused model
    assert head.borrowed["DUpsampling"] == ("dupsampling", "+c2")
    assert head.variants["DUpsampling"].options["fuse"] == ("c2",)


def test_the_headlines_first_seeds_come_first_then_the_rest():
    jobs = footing_jobs()
    headline = {(e.name, v) for e in EXPERIMENTS.values() if e.pretrained
                for v in e.pretrained[0]}
    block = [(j.experiment, j.variant) in headline and j.seed < FIRST_SEEDS for j in jobs]
    first = block.index(False)
    assert all(block[:first]) and not any(block[first:])       # one leading block
    assert first == len(headline) * FIRST_SEEDS
    late = [j.seed >= FIRST_SEEDS for j in jobs]
    assert late == sorted(late)                                 # seeds 3-4 after all of 0-2
    order = list(EXPERIMENTS)                                   # chapter order in a block
    ranks = [order.index(j.experiment) for j in jobs[:first]]
    assert ranks == sorted(ranks)
    only = footing_jobs(seeds=(0,), experiments=["gff", "exfuse"])
    assert [j.experiment for j in only][:2] == ["exfuse", "exfuse"]   # chapter order, not given
    with pytest.raises(ValueError, match="unknown experiments"):
        footing_jobs(experiments=["sfnet"])


def test_a_job_trains_on_the_footing_profile_into_its_own_file(tmp_path):
    profile = footing_profile(PROFILES["cpu"], 3000)
    assert profile.encoder == "mobilenet_v2-imagenet" and profile.steps == 3000
    job = Job("exfuse", "GCN, encoder's layout", 2)
    command = job_command(job, profile, tmp_path / "part.json", checkpoints=tmp_path / "ck")
    assert command[-15:] == ["--variants", "GCN, encoder's layout", "--seeds", "2",
                             "--out", str(tmp_path / "part.json"), "--precision", "fp32",
                             "--checkpoints", str(tmp_path / "ck"), "--steps", "3000",
                             "--encoder", "mobilenet_v2-imagenet", "--require-data"]
    assert job.slug == "exfuse--GCN__encoder_s_layout--2"
    assert stored_path("exfuse", profile).name == "exfuse-cpu-mobilenet_v2-imagenet-3000steps.json"
    own = job_command(job, PROFILES["cpu"], tmp_path / "p.json", require_data=False)
    assert "--steps" not in own and "--encoder" not in own and "--require-data" not in own
    assert "--checkpoints" not in own
    bf16 = job_command(job, profile, tmp_path / "p.json", precision="bf16")
    assert bf16[bf16.index("--precision") + 1] == "bf16"


def test_the_queue_trains_merges_borrows_and_resumes(tmp_path, results, no_camvid):
    # two real runs in two processes, on the smoke profile's scratch MobileNetV2 (no weights)
    profile = with_encoder(dataclasses.replace(PROFILES["smoke"], steps=3), "mobilenet_v2")
    jobs = [Job("fusion-levels", "FPN c2-c5", 0), Job("dupsampling", "bilinear, OS 16", 1)]
    assert pending_jobs(jobs, profile) == jobs
    lines = []
    status = run_queue(jobs, profile, tmp_path / "work", workers=2, threads=1,
                       require_data=False, poll_seconds=0.5, say=lines.append)
    assert status == {job: 0 for job in jobs}, lines
    for job in jobs:
        stored = read_results(stored_path(job.experiment, profile))
        assert [(r["variant"], r["seed"]) for r in stored["runs"]] == [(job.variant, job.seed)]
        assert stored["provenance"]["threads"] == [1]                 # one thread per process
        assert stored["runs"][0]["speed"]["precision"] == REFERENCE_PRECISION   # pinned
        work = configuration_dir(tmp_path / "work", profile)
        assert work.name == "smoke-mobilenet_v2-3steps"
        assert (work / f"{job.slug}.log").read_text().startswith(
            f"{job_command(job, profile, work / (job.slug + '.json'), False)[0]}")
    borrowed = read_results(stored_path("head-to-head", profile))     # chapter 6 borrows FPN
    assert [(r["variant"], r["seed"]) for r in borrowed["runs"]] == [("FPN", 0)]
    assert borrowed["runs"][0]["borrowed_from"].startswith("fusion-levels: FPN c2-c5")
    assert pending_jobs(jobs, profile) == []
    assert sum(line.startswith("start") for line in lines) == 2
    assert sum(line.startswith("done") for line in lines) == 2

    # stopped between a run and its merge: the next queue merges that run before it starts
    # anything (here a run that fails at once), and removes a checkpoint the run left
    stored = stored_path("dupsampling", profile)
    stored.unlink()
    left = (configuration_dir(tmp_path / "work", profile) / "checkpoints" / "x"
            / f"{jobs[1].slug}.pt")
    left.parent.mkdir(parents=True)
    left.write_bytes(b"a checkpoint")
    lines.clear()
    failing = Job("gff", "no such variant", 0)
    status = run_queue([failing, jobs[1]], profile, tmp_path / "work", require_data=False,
                       poll_seconds=0.2, say=lines.append)
    assert status == {jobs[1]: 0, failing: 2}
    assert lines[0].startswith("done dupsampling | bilinear, OS 16 | seed 1")
    assert "trained earlier" in lines[0] and lines[1] == "start gff | no such variant | seed 0"
    assert [(r["variant"], r["seed"]) for r in read_results(stored)["runs"]] == [
        ("bilinear, OS 16", 1)]
    assert not left.exists()

    # stopped between a merge and its copy into chapter 6: the next queue copies first, even
    # when it merges nothing
    borrower = stored_path("head-to-head", profile)
    borrower.unlink()
    assert run_queue([failing], profile, tmp_path / "work", require_data=False,
                     poll_seconds=0.2, say=lines.append) == {failing: 2}
    assert [(r["variant"], r["seed"]) for r in read_results(borrower)["runs"]] == [("FPN", 0)]
    written = borrower.stat().st_mtime_ns
    run_queue([failing], profile, tmp_path / "work", require_data=False, poll_seconds=0.2,
              say=lines.append)
    assert borrower.stat().st_mtime_ns == written        # nothing new to copy: left as it is


def test_a_borrower_trains_its_own_run_where_the_borrowed_one_has_another_precision(
        tmp_path, results, no_camvid):
    # chapter 6 borrows chapter 1's FPN: seed 0 stored at bf16, seed 1 at fp32
    profile = with_encoder(dataclasses.replace(PROFILES["smoke"], steps=2), "mobilenet_v2")
    for seed, precision in ((0, "bf16"), (1, "fp32")):
        runner.run_experiment("fusion-levels", profile, [seed], variants=["FPN c2-c5"],
                              precision=precision)
    stored = stored_path("head-to-head", profile)
    assert refresh_borrowers("fusion-levels", profile, (0, 1), False, "bf16") == ["head-to-head"]
    assert refresh_borrowers("fusion-levels", profile, (0, 1), False, "fp32") == ["head-to-head"]
    copies = {r["seed"]: r for r in read_results(stored)["runs"]}
    assert sorted(copies) == [0, 1] and all("borrowed_from" in r for r in copies.values())
    assert [copies[s]["speed"]["precision"] for s in (0, 1)] == ["bf16", "fp32"]

    jobs = [Job("head-to-head", "FPN", 0), Job("head-to-head", "FPN", 1),
            Job("head-to-head", "ExFuse", 0)]          # ExFuse: its own experiment trains it
    assert pending_jobs(jobs, profile, "fp32") == jobs[:1]
    assert pending_jobs(jobs, profile, "bf16") == jobs[1:2]

    # the queue's job: trained by chapter 6 itself, merged in place of the bf16 copy
    part = tmp_path / "part.json"
    runner.run_experiment("head-to-head", profile, [0], part, ["FPN"], precision="fp32")
    (own,) = read_results(part)["runs"]
    assert "borrowed_from" not in own and own["speed"]["precision"] == "fp32"
    assert merge_part(jobs[0], part, profile) is True
    runs = {r["seed"]: r for r in read_results(stored)["runs"]}
    assert sorted(runs) == [0, 1] and runs[0] == own and "borrowed_from" in runs[1]
    assert pending_jobs(jobs, profile, "fp32") == []
    assert merge_part(jobs[0], part, profile) is False                   # stored already

    # into the stored file directly: a bf16 run replaces the fp32 copy of seed 1, once
    runner.run_experiment("head-to-head", profile, [1], stored, ["FPN"], precision="bf16")
    runs = [(r["seed"], "borrowed_from" in r, r["speed"]["precision"])
            for r in read_results(stored)["runs"]]
    assert sorted(runs) == [(0, False, "fp32"), (1, False, "bf16")]


def test_a_run_stopped_halfway_resumes_first_from_its_checkpoint(tmp_path, results, no_camvid,
                                                                 monkeypatch):
    profile = with_encoder(dataclasses.replace(PROFILES["smoke"], steps=3), "mobilenet_v2")
    job, other = Job("fusion-levels", "c5", 0), Job("fusion-levels", "FPN c4-c5", 0)
    work = configuration_dir(tmp_path / "work", profile)
    # a run stopped after its checkpoint of step 2, as a killed process leaves it
    monkeypatch.setattr(runner, "train_config",
                        lambda *a, **kw: train_config(*a, checkpoint_every=2, **kw))
    step = fusionlab.train.train_step

    def dies_at_step_3(model, criterion, batch, run, *args):
        if run.step == 2:
            raise KeyboardInterrupt
        return step(model, criterion, batch, run, *args)

    monkeypatch.setattr(fusionlab.train, "train_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(job.experiment, profile, [0], work / f"{job.slug}.json",
                              [job.variant], require_data=False, checkpoints=work / "checkpoints",
                              precision=REFERENCE_PRECISION)  # the queue's, or it would not resume
    checkpoint = runner.run_checkpoint(work / "checkpoints", job.experiment, profile,
                                       "SyntheticScenes", job.variant, 0)
    assert checkpoint.parent.name == "fusion-levels-smoke-mobilenet_v2-3steps-SyntheticScenes"
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 2
    state["train_seconds"] = 1000.0  # marks what only a resumed run can have counted
    torch.save(state, checkpoint)
    lines = []
    # another schedule has a folder of its own: its queue starts the run afresh
    shorter = dataclasses.replace(profile, steps=2)
    status = run_queue([job], shorter, tmp_path / "work", require_data=False,
                       poll_seconds=0.2, say=lines.append)
    assert status == {job: 0} and lines[0] == "start fusion-levels | c5 | seed 0"
    assert checkpoint.exists()
    lines.clear()
    status = run_queue([other, job], profile, tmp_path / "work", workers=1, require_data=False,
                       poll_seconds=0.2, say=lines.append)
    assert status == {job: 0, other: 0}
    assert lines[0] == "resume fusion-levels | c5 | seed 0"          # before the job given first
    # its time is this queue's part only, and says so
    assert lines[1].startswith("done fusion-levels | c5 | seed 0: mIoU ")
    assert lines[1].endswith(" min in this queue)") and "(resumed, " in lines[1]
    assert lines[2] == "start fusion-levels | FPN c4-c5 | seed 0"
    stored = read_results(stored_path(job.experiment, profile))
    run = next(r for r in stored["runs"] if r["variant"] == job.variant)
    assert run["train_seconds"] > 1000.0                              # steps 1-2 came from it
    assert not checkpoint.exists()                                    # gone once stored


def test_a_failed_run_is_reported_and_the_queue_goes_on(tmp_path, results, no_camvid):
    profile = with_encoder(dataclasses.replace(PROFILES["smoke"], steps=3), "mobilenet_v2")
    bad = Job("gff", "no such variant", 0)
    lines = []
    status = run_queue([bad], profile, tmp_path / "work", require_data=False,
                       poll_seconds=0.2, say=lines.append)
    assert status == {bad: 2}                                   # the CLI's error status
    assert lines[-1].startswith("FAILED gff | no such variant | seed 0: exit 2")
    log = configuration_dir(tmp_path / "work", profile) / f"{bad.slug}.log"
    assert "unknown variants" in log.read_text()
    assert not stored_path("gff", profile).exists()
    with pytest.raises(ValueError, match="at least 1"):
        run_queue([bad], profile, tmp_path / "work", workers=0)


def test_an_interrupted_queue_stops_its_runs(tmp_path, results, no_camvid):
    profile = with_encoder(dataclasses.replace(PROFILES["smoke"], steps=3), "mobilenet_v2")
    job = Job("fusion-levels", "c5", 0)

    def interrupt(line):
        if line.startswith("start"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_queue([job], profile, tmp_path / "work", require_data=False, say=interrupt)
    part = configuration_dir(tmp_path / "work", profile) / f"{job.slug}.json"
    alive = subprocess.run(["pgrep", "-f", str(part)], capture_output=True)
    assert alive.returncode == 1                                 # no process left behind
    assert not part.exists() and pending_jobs([job], profile) == [job]


def test_the_command_line_lists_what_is_missing(results, capsys, tmp_path):
    # no results at 1234 steps, neither here nor in the package: every run is missing
    main(["queue", "--steps", "1234", "--list", "--experiments", "dupsampling"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "15 runs missing at 1234 steps on the ImageNet encoder (cpu profile)"
    assert out[1] == "  dupsampling | bilinear, OS 16 | seed 0"
    assert out[2] == "  dupsampling | DUpsampling, OS 16 | seed 0"
    assert len(out) == 16                          # 3 variants x 5 seeds
    # a run begun in --work-dir says how far it got
    profile = footing_profile(PROFILES["cpu"], 1234)
    job = Job("dupsampling", "bilinear, OS 16", 0)
    begun = configuration_dir(tmp_path / "work", profile) / "checkpoints" / "x" / f"{job.slug}.pt"
    begun.parent.mkdir(parents=True)
    torch.save({"model": {}, "step": 300}, begun)
    main(["queue", "--steps", "1234", "--list", "--experiments", "dupsampling",
          "--work-dir", str(tmp_path / "work")])
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  dupsampling | bilinear, OS 16 | seed 0 (checkpoint at step 300)"
    assert out[2] == "  dupsampling | DUpsampling, OS 16 | seed 0"    # not begun
    broken = begun.parent / f"{Job('dupsampling', 'DUpsampling, OS 16', 0).slug}.pt"
    broken.write_text("not a checkpoint")              # named, and the listing goes on
    main(["queue", "--steps", "1234", "--list", "--experiments", "dupsampling",
          "--work-dir", str(tmp_path / "work")])
    out = capsys.readouterr().out.splitlines()
    assert out[2] == f"  dupsampling | DUpsampling, OS 16 | seed 0 (unreadable checkpoint {broken})"
    assert len(out) == 16
    with pytest.raises(SystemExit):
        main(["queue", "--experiments", "sfnet"])


def test_show_prints_the_stored_results_and_their_paired_gains(tmp_path, results, no_camvid,
                                                                capsys):
    profile = dataclasses.replace(PROFILES["smoke"], steps=2)
    runner.run_experiment("fusion-levels", profile, [0, 1], variants=["c5", "FPN c2-c5"])
    main(["show", "fusion-levels", "--profile", "smoke", "--steps", "2"])
    out = capsys.readouterr().out
    stored = read_results(stored_path("fusion-levels", profile))
    mean = 100 * stored["summary"]["c5"]["miou"]["mean"]
    assert f"| c5 | 2 | {mean:.1f} ± " in out                     # mean ± std over 2 seeds
    gain = [line for line in out.splitlines() if line.startswith("| FPN c2-c5 vs c5 |")]
    assert len(gain) == 1 and gain[0].endswith(("| yes |", "| no |"))
    assert "FPN c4-c5" not in out                                # not run: no row, no gain
    with pytest.raises(SystemExit) as err:                      # nothing stored at 3 steps
        main(["show", "fusion-levels", "--profile", "smoke", "--steps", "3"])
    assert err.value.code == 1
    assert "experiment run fusion-levels --profile smoke --steps 3" in capsys.readouterr().err
    main(["show", "fusion-levels", "--profile", "smoke", "--steps", "2", "--encoder", "resnet"])
    assert capsys.readouterr().out == out                       # resnet: the profile's own
    with pytest.raises(SystemExit) as err:                      # the profile's own values
        main(["show", "fusion-levels", "--profile", "smoke", "--steps", "8",
              "--encoder", "resnet"])
    hint = capsys.readouterr().err.splitlines()
    assert err.value.code == 1 and "--steps" not in hint[-1] and "--encoder" not in hint[-1]
    # what is stored is named: the 2-step runs
    assert "  python -m fusionlab experiment show fusion-levels --profile smoke --steps 2" in hint
    for wrong in (["--footing", "--encoder", "mobilenet_v2"], ["--footing", "--steps", "3"],
                  ["--steps", "0"]):
        with pytest.raises(SystemExit) as err:
            main(["show", "fusion-levels", *wrong])
        assert err.value.code == 2


def test_show_reads_the_footing_at_its_reference_schedule(results, capsys):
    # nothing in FUSIONLAB_RESULTS: the results shipped with the package
    main(["show", "fusion-levels", "--footing"])
    out = capsys.readouterr().out
    assert f"--encoder mobilenet_v2-imagenet --steps {footing_steps()}" in out
    assert "| FPN c2-c5 vs c5 |" in out
    # chapter 6's experiment is stored on the footing alone: show without it points there
    with pytest.raises(SystemExit) as err:
        main(["show", "head-to-head"])
    assert err.value.code == 1 and capsys.readouterr().err.splitlines()[:2] == [
        "stored results of head-to-head are in other configurations:",
        "  python -m fusionlab experiment show head-to-head --profile cpu --footing"]
    # the footing first, the profile's own next, the other schedules and encoders after
    with pytest.raises(SystemExit) as err:
        main(["show", "fusion-levels", "--profile", "gpu"])
    shown = capsys.readouterr().err.splitlines()
    assert shown[1:3] == [f"  python -m fusionlab experiment show fusion-levels {words}"
                          for words in ("--profile cpu --footing", "--profile cpu")]
    assert "  python -m fusionlab experiment show fusion-levels --profile cpu --steps 750" in shown
    assert shown[-1].startswith("no stored results of fusion-levels for this configuration; "
                                "train them with: python -m fusionlab experiment run "
                                "fusion-levels --profile gpu")


def test_a_single_seed_shows_its_value_without_a_spread(tmp_path, no_camvid):
    one = runner.run_experiment("fusion-levels", dataclasses.replace(PROFILES["smoke"], steps=2),
                                [0], tmp_path / "one.json", ["c5"])
    row = results_table(one).splitlines()[-1]
    assert row == f"| c5 | 1 | {100 * one['summary']['c5']['miou']['mean']:.1f} | " + " | ".join(
        f"{100 * one['summary']['c5'][m]['mean']:.1f}" for m in ("thin_iou", "boundary_f")) + " |"


def test_merge_of_a_folder_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["merge", "gff", str(tmp_path), "--out", str(tmp_path / "merged.json")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and str(tmp_path) in lines[0]
