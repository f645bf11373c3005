"""The command line: bench, train, evaluate and bad arguments, on the smoke profile."""

import json
import re

import pytest
import torch

from fusionlab.__main__ import main
from fusionlab.experiments import load_results
from fusionlab.provenance import git_commit


def bench(capsys, *args):
    main(["bench", "--profile", "smoke", *args])
    return json.loads(capsys.readouterr().out)


def test_bench_counts_the_switched_on_modules(capsys):
    gcn = bench(capsys, "--model", "gcn")
    plain = bench(capsys, "--model", "exfuse")
    ss = bench(capsys, "--model", "exfuse", "--modules", "ss")
    assert plain["params"] == gcn["params"] and plain["gflops"] == gcn["gflops"]
    assert ss["params"] > gcn["params"] and ss["gflops"] > gcn["gflops"]
    two = bench(capsys, "--model", "fpn", "--modules", "levels=c4,c5")
    four = bench(capsys, "--model", "fpn")
    assert two["size"] == [48, 64] and two["options"] == {"levels": ["c4", "c5"]}
    assert two["gflops"] < four["gflops"]


def test_train_and_evaluate_from_a_checkpoint(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    ckpt = str(tmp_path / "exfuse.pt")
    args = ["--model", "exfuse", "--modules", "seb", "dap", "--profile", "smoke"]
    main(["train", *args, "--steps", "2", "--checkpoint", ckpt, "--device", "cpu"])
    trained = capsys.readouterr().out
    main(["evaluate", *args, "--checkpoint", ckpt])
    evaluated = capsys.readouterr().out
    line = [x for x in trained.splitlines() if x.startswith("SyntheticScenes val: mIoU")]
    assert line and line[0] in evaluated.splitlines()  # the checkpoint holds the trained model
    # beside the checkpoint: the resolved configuration and the metrics log
    config = json.loads((tmp_path / "exfuse.config.json").read_text())
    assert config["command"] == ("python -m fusionlab train " + " ".join(args)
                                 + f" --steps 2 --checkpoint {ckpt} --device cpu")
    assert config["options"] == {"seb": True, "dap": True} and config["seed"] == 0
    assert config["train_config"]["steps"] == 2 and config["profile"]["name"] == "smoke"
    assert config["train_config"]["device"] == "cpu" and config["data"] == "SyntheticScenes"
    assert config["commits"] == [git_commit()]  # the code that trained it
    log = [json.loads(x) for x in (tmp_path / "exfuse.log.jsonl").read_text().splitlines()]
    assert log[-2]["step"] == 2 and all(set(e) >= {"step", "loss", "lr"} for e in log[:-1])
    assert log[-1]["step"] == 2 and log[-1]["train_seconds"] > 0
    assert f"mIoU {log[-1]['val']['miou']:.3f}" in line[0]


def test_evaluate_checks_the_checkpoint_before_reading_data(capsys, tmp_path, monkeypatch):
    read = []
    monkeypatch.setattr("fusionlab.__main__.load_data", lambda *a, **k: read.append(1))
    foreign = tmp_path / "notes.pt"
    foreign.write_text("not a checkpoint")
    for path, message in ((tmp_path / "missing.pt", "no checkpoint file"),
                          (foreign, "not a readable fusionlab checkpoint")):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", "--profile", "smoke", "--checkpoint", str(path)])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and message in err and str(path) in err
        assert len(err.splitlines()) == 1
    assert read == []


def test_evaluate_says_when_its_checkpoint_was_saved_mid_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    ckpt = str(tmp_path / "fcn.pt")
    args = ["--model", "fcn", "--profile", "smoke", "--checkpoint", ckpt]
    main(["train", *args, "--steps", "2"])
    capsys.readouterr()
    main(["evaluate", *args])  # finished: nothing to say
    assert "note:" not in capsys.readouterr().err
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "config": {**state["config"], "steps": 5}}, ckpt)  # as if stopped at 2
    main(["evaluate", *args])
    captured = capsys.readouterr()
    assert f"note: {ckpt} was saved at step 2 of 5: its training has not finished" in captured.err
    assert "SyntheticScenes val: mIoU" in captured.out  # evaluated all the same


def test_evaluate_refuses_another_models_checkpoint_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    ckpt = str(tmp_path / "fcn.pt")
    main(["train", "--model", "fcn", "--profile", "smoke", "--steps", "1", "--checkpoint", ckpt])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--model", "fpn", "--profile", "smoke", "--checkpoint", ckpt])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    record = tmp_path / "fcn.config.json"  # the command that trained it, written beside it
    assert exit_.value.code == 2 and err.startswith(
        f"error: checkpoint {ckpt} (trained by the command in {record}) holds weights of "
        "another model than this FPN: ")
    assert not re.search(r"\b0 (missing|unexpected|shapes)", err)  # only those that occur
    # the same model at another width: the same layers, other sizes, and a hint at the options
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "fcn", "--profile", "cpu", "--checkpoint", ckpt])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "holds weights of the same layers as this FCN at other sizes" in err
    assert "shapes differ" in err and "missing keys" not in err


def test_train_checks_a_checkpoint_before_data_and_before_training(capsys, tmp_path,
                                                                    monkeypatch):
    camvid_fixture = tmp_path / "camvid"   # a CamVid folder, which --data does not take
    camvid_fixture.mkdir()
    for split in ("train", "val", "test"):
        (camvid_fixture / f"{split}.txt").write_text("")
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    ckpt = str(tmp_path / "fcn.pt")
    main(["train", "--model", "fcn", "--profile", "smoke", "--steps", "1", "--checkpoint", ckpt])
    capsys.readouterr()
    main(["train", "--model", "fcn", "--profile", "smoke", "--steps", "1", "--checkpoint", ckpt])
    assert "SyntheticScenes val: mIoU" in capsys.readouterr().out  # a valid resume goes on

    def trains(*args, **kwargs):
        raise RuntimeError("training began")

    def reads(*args, **kwargs):
        raise RuntimeError("data was read")

    monkeypatch.setattr("fusionlab.__main__.train", trains)
    monkeypatch.setattr("fusionlab.__main__.load_data", reads)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    for path, message in ((tmp_path, "is a folder"), (garbage, "not a readable fusionlab")):
        with pytest.raises(SystemExit) as exit_:  # refused before any data is read
            main(["train", "--profile", "smoke", "--checkpoint", str(path)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    monkeypatch.setattr("fusionlab.__main__.train", trains)
    for argv, message in (
            (["--model", "fpn", "--checkpoint", ckpt], "of another model than this FPN"),
            (["--model", "fcn", "--steps", "2", "--checkpoint", ckpt],
             "was written with steps=1, this run has steps=2"),
            (["--modules", "dfp=maybe", "--model", "gff"], "dfp must be a bool")):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--profile", "smoke", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and message in err[-1], err
        assert not any(line.startswith("Traceback") for line in err)
    with pytest.raises(SystemExit) as exit_:  # --data names the folder holding camvid/
        main(["train", "--profile", "smoke", "--data", str(camvid_fixture)])
    assert exit_.value.code == 2 and "holds CamVid itself" in capsys.readouterr().err
    # none of them began training; without --checkpoint, the trained weights are lost: it
    # says so before training
    with pytest.raises(RuntimeError, match="training began"):
        main(["train", "--model", "fcn", "--profile", "smoke"])
    assert "no --checkpoint: the trained weights will not be saved" in capsys.readouterr().err
    for argv, message in ((["--modules"], "expected at least one argument"),
                          (["--steps", "abc"], "must be a positive integer, got 'abc'")):
        with pytest.raises(SystemExit) as exit_:
            main(["train", *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # after a command too, as its help says
        main(["train", "--list-models"])
    assert exit_.value.code == 0 and "fpn: FPN" in capsys.readouterr().out


@pytest.mark.parametrize("modules, expected", [
    (["levels=c5"], {"levels": "c5"}),  # a list of one
    (["levels=c4,c5"], {"levels": ["c4", "c5"]}),
])
def test_a_list_option_takes_one_value_or_several(capsys, modules, expected):
    report = bench(capsys, "--model", "fpn", "--modules", *modules)
    assert report["options"] == expected
    single = bench(capsys, "--model", "fcn")
    assert (report["params"] > single["params"]) == (modules != ["levels=c5"])


@pytest.mark.parametrize("model, modules, expected", [
    ("exfuse", ["ss"], {"ss": True}),  # a switch
    ("exfuse", ["ss=features", "ecre=subpixel"], {"ss": "features", "ecre": "subpixel"}),
    ("gff", ["output_stride=32"], {"output_stride": 32}),  # an int
    ("dfn", ["border", "border_weight=0.5"], {"border": True, "border_weight": 0.5}),
    ("dupsampling", ["temperature=false", "fuse=none"], {"temperature": False, "fuse": "none"}),
    ("dupsampling", ["fuse=c3"], {"fuse": "c3"}),  # a list of one level
    ("gcn", ["blocks=1,1,5,1"], {"blocks": [1, 1, 5, 1]}),  # a list of ints
])
def test_every_option_type_reaches_the_builder(capsys, model, modules, expected):
    assert bench(capsys, "--model", model, "--modules", *modules)["options"] == expected


def test_list_models_version_and_plain_help(capsys):
    with pytest.raises(SystemExit) as exit_:  # like --version: print, then exit 0
        main(["--list-models"])
    listed = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "fpn: FPN" in listed and "    levels: encoder levels fused" in listed
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("fusionlab 0.")
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "--list-models" in help_text and "``" not in help_text and "::" not in help_text
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2 and "a command is required" in capsys.readouterr().err


def test_data_and_device_are_used_as_given(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--profile", "smoke", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"--data {tmp_path}" in err and "does not exist" in err
    for device, message in (("tpu", "cpu, cuda, cuda:N or mps"),
                            ("cuda:7", "cuda"), ("mps", "mps")):
        if device == "cuda:7" and torch.cuda.device_count() > 7:
            continue
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--profile", "smoke", "--device", device])
        err = capsys.readouterr().err.strip()  # one line, not the whole program's usage
        assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--steps", "-5"], "positive"),
    (["train", "--steps", "0"], "positive"),
    (["bench", "--model", "fpn", "--modules", "lvls=c5"], "levels"),
    (["bench", "--model", "exfuse", "--modules", "ss", "ss"], "twice"),
    (["bench", "--model", "fpm"], "invalid choice"),
])
def test_bad_arguments_exit_with_a_message(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--profile", "smoke"] if args[0] == "train" else args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["estimate", "--tflops", "0"], "--tflops: must be a positive number, got 0"),
    (["estimate", "--tflops", "nan"], "--tflops: must be a positive number, got nan"),
    (["estimate", "--cores", "0"], "--cores: must be a positive integer, got 0"),
    (["queue", "--workers", "0"], "--workers: must be a positive integer, got 0"),
    (["queue", "--threads", "two"], "--threads: must be a positive integer, got 'two'"),
])
def test_experiment_numbers_are_checked_before_any_work(capsys, monkeypatch, args, message):
    def works(*args, **kwargs):
        raise RuntimeError("the command began its work")

    monkeypatch.setattr("fusionlab.experiments.cli.estimate_table", works)
    monkeypatch.setattr("fusionlab.experiments.cli.queue_command", works)
    with pytest.raises(SystemExit) as exit_:
        main(["experiment", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_experiment_list_names_every_variant(capsys):
    main(["experiment", "list"])
    out = capsys.readouterr().out
    assert "fusion-levels:" in out and "'FPN c2-c5': fpn" in out and "exfuse:" in out


def test_experiment_run_with_other_steps_is_stored_apart(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    args = ["experiment", "run", "fusion-levels", "--profile", "smoke", "--seeds", "0",
            "--variants", "c5"]
    main(args)
    main([*args, "--steps", "3"])
    main([*args, "--steps", "8"])  # the profile's own schedule: its own file, nothing new
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "fusion-levels-smoke-3steps.json", "fusion-levels-smoke.json"]
    default = load_results("fusion-levels", "smoke")
    longer = load_results("fusion-levels", "smoke", steps=3)
    assert default["profile_config"]["steps"] == 8 and longer["profile_config"]["steps"] == 3
    assert longer["profile"] == "smoke" and longer["runs"][0]["history"][-1]["step"] == 3
    assert not default["provenance"]["command"].endswith("--steps 8")
    assert longer["provenance"]["command"].endswith("--seeds 0 --steps 3 --variants c5")
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--steps", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--steps: must be a positive integer, got 0" in err
    main([*args, "--encoder", "mobilenet_v2", "--steps", "3"])
    other = load_results("fusion-levels", "smoke", steps=3, encoder="mobilenet_v2")
    assert other["profile_config"]["encoder"] == "mobilenet_v2"
    assert other["summary"]["c5"]["params"] != longer["summary"]["c5"]["params"]
    assert other["provenance"]["command"].endswith(
        "--seeds 0 --encoder mobilenet_v2 --steps 3 --variants c5")
    assert (tmp_path / "fusion-levels-smoke-mobilenet_v2-3steps.json").is_file()


def test_a_missing_imagenet_encoder_is_one_clear_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--model", "fpn", "--encoder", "mobilenet_v2-imagenet", "--profile",
              "smoke"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "mobilenet_v2-b0353104.pth not found" in err
    assert str(tmp_path / "mobilenet_v2-b0353104.pth") in err


def test_require_data_turns_the_fallback_into_an_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("FUSIONLAB_DOWNLOAD", "0")
    monkeypatch.setenv("FUSIONLAB_RESULTS", str(tmp_path))
    for args in (["train", "--profile", "smoke", "--require-data"],
                 ["experiment", "run", "fusion-levels", "--profile", "smoke", "--seeds", "0",
                  "--variants", "c5", "--require-data"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "CamVid is required" in err
        assert str(tmp_path / "none" / "camvid") in err
    assert list(tmp_path.glob("*.json")) == []
    monkeypatch.setenv("FUSIONLAB_REQUIRE_DATA", "1")
    with pytest.raises(SystemExit):
        main(["train", "--profile", "smoke"])
    assert "no synthetic fallback" in capsys.readouterr().err
