"""Several processes train one model (torchrun, DistributedDataParallel), tested on the CPU
with the Gloo backend and two processes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fusionlab.datasets import SyntheticScenes
from fusionlab.distributed import World
from fusionlab.train import TrainConfig, training_batches

TOLERANCE = 0.03
"""Largest relative difference allowed between the loss of one process and the mean loss of
two at the same step. With the same global batches the two differ only where batch norm sees
each process's half of the batch (PyTorch synchronises batch norm on GPUs only) and in the
order of floating-point sums: 1.7% at most in the run this was set from."""

SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    import fusionlab.train
    from fusionlab import distributed
    from fusionlab.datasets import SyntheticScenes
    from fusionlab.encoders import ResNetEncoder
    from fusionlab.models import FPN
    from fusionlab.train import TrainConfig, seed_everything, train
    torch.set_num_threads(1)
    out, steps, checkpoint = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
    if os.environ.get("STOP_AFTER"):  # an interruption: the process dies at that step
        batches = fusionlab.train.training_batches
        def interrupted(*args, **kwargs):
            for step, batch in enumerate(batches(*args, **kwargs)):
                if step == int(os.environ["STOP_AFTER"]):
                    raise SystemExit(3)
                yield batch
        fusionlab.train.training_batches = interrupted
    seed_everything(0)
    model = FPN(11, ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64)), channels=16)
    cfg = TrainConfig(steps=steps, batch_size=8, lr=1e-3, optimizer="adamw", seed=3,
                      log_every=1, progress=False, device="cpu", precision="fp32",
                      channels_last=False, checkpoint=checkpoint, checkpoint_every=4)
    result = train(model, SyntheticScenes(32, (48, 64), seed=0),
                   SyntheticScenes(6, (48, 64), seed=1), cfg)
    if distributed.world().is_main:
        with open(out, "w") as f:
            json.dump({"loss": [h["loss"] for h in result.history],
                       "miou": result.metrics["miou"], "processes": distributed.world().size},
                      f)
""")


def _run(tmp_path: Path, name: str, steps: int, processes: int, checkpoint: str = "",
         stop_after: int | None = None) -> dict | None:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{name}.json"
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}"]
              if processes > 1 else [sys.executable])
    env = {**os.environ, **({"STOP_AFTER": str(stop_after)} if stop_after else {})}
    done = subprocess.run([*launch, str(script), str(out), str(steps), checkpoint],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    if stop_after:
        assert done.returncode != 0 and not out.exists()
        return None
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_shares_of_a_step_make_up_the_batch_of_one_process():
    data = SyntheticScenes(20, (32, 32), seed=0)
    cfg = TrainConfig(batch_size=4, seed=5)
    one = training_batches(data, cfg, 0, False)
    shares = [training_batches(data, cfg, 0, False, World(rank, 2)) for rank in (0, 1)]
    for step in range(12):  # three epochs of five batches (20 images): epoch ends included
        batch = next(one)["dataset_index"]
        parts = [next(s)["dataset_index"] for s in shares]
        assert [len(p) for p in parts] == [2, 2]
        assert sorted(torch.cat(parts).tolist()) == sorted(batch.tolist()), step
    with pytest.raises(ValueError, match="cannot be shared equally by 3 processes"):
        next(training_batches(data, TrainConfig(batch_size=4), 0, False, World(0, 3)))


def test_two_processes_follow_the_loss_curve_of_one(tmp_path):
    one = _run(tmp_path, "one", 12, 1)
    two = _run(tmp_path, "two", 12, 2)
    assert one["processes"] == 1 and two["processes"] == 2
    assert len(two["loss"]) == len(one["loss"]) == 12
    worst = max(abs(a - b) / a for a, b in zip(one["loss"], two["loss"]))
    assert worst < TOLERANCE, (one["loss"], two["loss"])
    assert two["loss"][-1] < two["loss"][0]  # it trains
    assert 0 <= two["miou"] <= 1


def test_a_distributed_run_resumes_from_its_one_checkpoint(tmp_path):
    whole = _run(tmp_path, "whole", 8, 2)
    checkpoint = str(tmp_path / "run.pt")
    _run(tmp_path, "interrupted", 8, 2, checkpoint, stop_after=6)  # saved at step 4, then dies
    assert [p.name for p in tmp_path.glob("run*")] == ["run.pt"]  # one file, no leftovers
    resumed = _run(tmp_path, "resumed", 8, 2, checkpoint)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)


def test_an_experiment_under_torchrun_stores_its_result_once(tmp_path):
    out = tmp_path / "fl.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "fusionlab", "experiment", "run", "fusion-levels",
               "--profile", "smoke", "--seeds", "0", "--variants", "c5", "--out", str(out),
               "--checkpoints", str(tmp_path / "checkpoints")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "FUSIONLAB_DATA": str(tmp_path),
                               "FUSIONLAB_DOWNLOAD": "0", "TQDM_DISABLE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [(r["variant"], r["seed"]) for r in results["runs"]] == [("c5", 0)]
    assert done.stdout.count("mIoU") == 1  # one summary, from the first process
    folders = list((tmp_path / "checkpoints").iterdir())        # one checkpoint, removed once
    assert len(folders) == 1 and list(folders[0].iterdir()) == []  # the run was stored


EVALUATE = textwrap.dedent("""
    import json, sys, torch
    from fusionlab import distributed
    from fusionlab.datasets import SyntheticScenes
    from fusionlab.encoders import ResNetEncoder
    from fusionlab.models import FPN
    from fusionlab.evaluation import evaluate
    from fusionlab.train import seed_everything
    torch.set_num_threads(1)
    seed_everything(0)
    model = FPN(11, ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64)), channels=16)
    metrics = evaluate(model, SyntheticScenes(7, (48, 64), seed=1), batch_size=2, device="cpu",
                       progress=False)
    if distributed.connect("cpu").is_main:
        with open(sys.argv[1], "w") as f:
            json.dump({k: metrics[k] for k in ("miou", "iou", "boundary_f")}, f)
""")


def test_shares_of_the_validation_set_add_up_to_the_whole(tmp_path):
    """Seven images over two processes (4 + 3): the counts added up give the metrics of one
    process scoring all seven."""
    script = tmp_path / "evaluate_script.py"
    script.write_text(EVALUATE)
    scores = {}
    for processes in (1, 2):
        out = tmp_path / f"{processes}.json"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  f"--nproc_per_node={processes}"]
        done = subprocess.run([*launch, str(script), str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        scores[processes] = json.loads(out.read_text())
    assert scores[2]["iou"] == pytest.approx(scores[1]["iou"], nan_ok=True)
    assert scores[2]["miou"] == pytest.approx(scores[1]["miou"])
    assert scores[2]["boundary_f"] == pytest.approx(scores[1]["boundary_f"])
