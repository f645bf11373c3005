"""The command line: bench, train, evaluate and bad arguments, on the smoke profile."""

import json

import pytest

from fusionlab.__main__ import main
from fusionlab.experiments import load_results


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
    main(["train", *args, "--steps", "2", "--checkpoint", ckpt])
    trained = capsys.readouterr().out
    main(["evaluate", *args, "--checkpoint", ckpt])
    evaluated = capsys.readouterr().out
    line = [x for x in trained.splitlines() if x.startswith("SyntheticScenes val: mIoU")]
    assert line and line[0] in evaluated.splitlines()  # the checkpoint holds the trained model


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
    assert longer["provenance"]["command"].endswith("--seeds 0 --steps 3")
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--steps", "0"])
    assert exit_.value.code == 2 and "--steps must be positive, got 0" in capsys.readouterr().err
    main([*args, "--encoder", "mobilenet_v2", "--steps", "3"])
    other = load_results("fusion-levels", "smoke", steps=3, encoder="mobilenet_v2")
    assert other["profile_config"]["encoder"] == "mobilenet_v2"
    assert other["summary"]["c5"]["params"] != longer["summary"]["c5"]["params"]
    assert other["provenance"]["command"].endswith("--seeds 0 --encoder mobilenet_v2 --steps 3")
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
