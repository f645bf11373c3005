"""The command line: bench and train on the smoke profile."""

import json

from fusionlab.__main__ import main


def bench(capsys, *args):
    main(["bench", "--profile", "smoke", *args])
    return json.loads(capsys.readouterr().out)


def test_bench_counts_the_switched_on_modules(capsys):
    gcn = bench(capsys, "--model", "gcn")
    ss = bench(capsys, "--model", "exfuse", "--modules", "ss")
    none = bench(capsys, "--model", "exfuse", "--modules")
    assert none["params"] == gcn["params"] and none["gflops"] == gcn["gflops"]
    assert ss["params"] > gcn["params"] and ss["gflops"] > gcn["gflops"]
    assert bench(capsys, "--model", "fpn", "--levels", "c4", "c5")["size"] == [48, 64]


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
