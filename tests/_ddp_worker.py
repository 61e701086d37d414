"""One process of tests/test_distributed_training.py: train on saved FER-2013 faces, record every step.

Run as ``python _ddp_worker.py FACES.npz OUT`` (validation faces in ``val.npz`` beside it) (one process) or under torchrun (several). Each rank writes
``OUT/steps-<rank>.json``: per optimiser step, the training rows it used and the largest difference between
its parameters and every other rank's; rank 0 also writes ``OUT/final.pt``, the parameters after training.
Batch norm stays in eval mode (fixed statistics): with batch statistics, each process would normalise its own
slice of the batch (SyncBatchNorm is GPU-only in torch), which is the one intended difference from one process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(faces: str, out: str) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist

    from emotionkit.data.fer2013 import FaceDataset
    from emotionkit.training.trainer import TrainConfig, Trainer

    data, held_out = np.load(faces), np.load(Path(faces).with_name("val.npz"))
    train = FaceDataset(data["images"], data["labels"])
    val = FaceDataset(held_out["images"], held_out["labels"])
    config = TrainConfig(
        backbone="cnn",
        backbone_config={"conv_dropout": 0.0, "dropout": 0.0},  # dropout masks would differ between 1 and 2 processes
        epochs=2,
        batch_size=64,
        class_balance="none",
        threads=1,
        tta_flip=False,
        recalibrate_bn=False,
        progress=False,
    )
    trainer = Trainer(config, out)
    for module in trainer.model.modules():  # batch norm on fixed statistics: see the test's tolerance note
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.train = lambda mode=True, m=module: torch.nn.Module.train(m, False)  # type: ignore[method-assign]
    records: list[dict] = []

    def record(step: int, model: torch.nn.Module, rows: torch.Tensor) -> None:
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gap = 0.0
        if trainer.group.world_size > 1:
            gathered = [torch.empty_like(flat) for _ in range(trainer.group.world_size)]
            dist.all_gather(gathered, flat)
            gap = max(float((g - flat).abs().max()) for g in gathered)
        records.append({"step": step, "rows": rows.tolist(), "max_gap": gap})

    trainer.step_callbacks.append(record)
    trainer.fit(train, val)
    rank = trainer.group.rank
    (Path(out) / f"steps-{rank}.json").write_text(json.dumps(records))
    if rank == 0:
        torch.save([p.detach().clone() for p in trainer.model.parameters()], Path(out) / "final.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
