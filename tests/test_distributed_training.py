"""Multi-process training (DDP, gloo on CPU) on real FER-2013 faces: ranks in step, same result as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

WORKER = Path(__file__).with_name("_ddp_worker.py")

pytestmark = pytest.mark.slow


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fer_train_small):
    """The same 2-epoch run of the cnn on 256 real training faces (72 for validation), in one process and in two."""
    root = tmp_path_factory.mktemp("ddp")
    faces = root / "faces.npz"
    from emotionkit.data.splits import stratified_split

    train, val, _ = stratified_split(fer_train_small.labels, (0.45, 0.12, 0.43), seed=0)  # every class in both
    np.savez(faces, images=fer_train_small.images[train[:256]], labels=fer_train_small.labels[train[:256]])
    np.savez(root / "val.npz", images=fer_train_small.images[val], labels=fer_train_small.labels[val])
    _run([sys.executable, str(WORKER), str(faces), str(root / "one")])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    _run([*torchrun, str(WORKER), str(faces), str(root / "two")])
    return root


def _steps(run: Path, rank: int) -> list[dict]:
    return json.loads((run / f"steps-{rank}.json").read_text())


def test_ranks_hold_identical_weights_after_every_step(runs):
    for rank in (0, 1):
        steps = _steps(runs / "two", rank)
        assert [s["step"] for s in steps] == list(range(1, 9))  # 256 faces / 64 per global batch, 2 epochs
        assert all(s["max_gap"] == 0.0 for s in steps)


def test_ranks_split_each_global_batch_between_them(runs):
    one, rank0, rank1 = _steps(runs / "one", 0), _steps(runs / "two", 0), _steps(runs / "two", 1)
    for single, a, b in zip(one, rank0, rank1):
        assert len(a["rows"]) == len(b["rows"]) == 32
        assert not set(a["rows"]) & set(b["rows"])
        assert sorted(a["rows"] + b["rows"]) == sorted(single["rows"])  # the 1-process run's batch


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    from emotionkit.recognizer import build_backbone

    torch.manual_seed(0)  # the cnn's initial weights, as Trainer builds them (seed 0)
    initial = torch.cat(
        [p.flatten() for p in build_backbone("cnn", {"conv_dropout": 0.0, "dropout": 0.0}).parameters()]
    )
    initial = initial.detach()
    one = torch.cat([p.flatten() for p in torch.load(runs / "one" / "final.pt")])
    two = torch.cat([p.flatten() for p in torch.load(runs / "two" / "final.pt")])
    travelled = float((one - initial).norm())
    assert travelled > 0.1  # training moved the weights
    # With batch norm on fixed statistics (the worker's note), two processes compute the same mean gradient as one,
    # summed in another order: equal to float rounding. Tolerance 1e-4 of the distance travelled; a wrong split
    # (each rank on the whole batch, gradients summed instead of averaged) is off by orders of magnitude more.
    assert float((two - one).norm()) / travelled < 1e-4
    config = json.loads((runs / "two" / "train_config.json").read_text())
    assert config["distributed"] == {
        "world_size": 2,
        "backend": "gloo",
        "global_batch_size": 64,
        "per_process_batch_size": 32,
        "lr": 1e-3,
    }
    assert json.loads((runs / "one" / "train_config.json").read_text())["distributed"]["world_size"] == 1
