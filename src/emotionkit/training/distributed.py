"""Multi-process training with torch DistributedDataParallel (gloo on CPUs, nccl on GPUs).

``emotionkit train --nproc N`` starts N processes with torchrun; a plain ``torchrun --nproc-per-node N -m emotionkit
train ...`` works the same. Every process draws the same global batch (same seed), takes its slice of it
(rank ``r`` of ``N`` takes rows ``r, r + N, ...``) and DDP averages the gradients, so ``--batch-size`` is the
global batch and the learning rate means what it means in one process. Only rank 0 writes files and logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..exceptions import InvalidOptionError

__all__ = ["ProcessGroup", "launch"]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a training job: ``rank`` of ``world_size`` (one process: 0 of 1).

    Parameters
    ----------
    rank : int, default 0
        This process's rank.
    world_size : int, default 1
        Processes in the job.
    backend : str, optional
        The torch.distributed backend (``"gloo"``, ``"nccl"``); ``None`` for one process.
    """

    rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @classmethod
    def from_environment(cls, device: torch.device | str = "cpu") -> ProcessGroup:
        """Join the job torchrun describes (``RANK``, ``WORLD_SIZE``); one process when there is none.

        Parameters
        ----------
        device : torch.device or str, default "cpu"
            Where the model trains: nccl for CUDA, gloo otherwise.

        Returns
        -------
        ProcessGroup
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), backend)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch: ``rank, rank + world_size, ...``.

        Parameters
        ----------
        batch : torch.Tensor
            The global batch (rows first).

        Returns
        -------
        torch.Tensor
        """
        return batch if self.world_size == 1 else batch[self.rank :: self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to call in training: ``model`` itself, or a DDP wrapper that averages gradients.

        Parameters
        ----------
        model : torch.nn.Module
            The model being trained (its parameters stay the ones the optimiser holds).

        Returns
        -------
        torch.nn.Module
        """
        if self.world_size == 1:
            return model
        return nn.parallel.DistributedDataParallel(model)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Sum numbers over all ranks (the epoch's loss and counts).

        Parameters
        ----------
        values : sequence of float
            This rank's numbers.

        Returns
        -------
        list of float
            Each summed over the ranks.
        """
        if self.world_size == 1:
            return list(values)
        import torch.distributed as dist

        total = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(total)
        return total.tolist()

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics, which each rank updates on its own slice).

        Parameters are identical on every rank already (DDP averages the gradients); after this the models are,
        so every rank scores validation alike and takes the same early-stopping decisions.

        Parameters
        ----------
        model : torch.nn.Module
            The unwrapped model.
        """
        if self.world_size > 1:
            import torch.distributed as dist

            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def describe(self, batch_size: int, lr: float) -> dict[str, Any]:
        """What the run's config records: processes, backend, global and per-process batch, learning rate.

        Parameters
        ----------
        batch_size : int
            The global batch (``--batch-size``).
        lr : float
            The learning rate.

        Returns
        -------
        dict
        """
        return {
            "world_size": self.world_size,
            "backend": self.backend or "none",
            "global_batch_size": batch_size,
            "per_process_batch_size": -(-batch_size // self.world_size),
            "lr": lr,
        }


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``emotionkit ARGV`` in ``nproc`` processes under torchrun on this machine; return its exit status.

    Parameters
    ----------
    nproc : int
        Processes (>= 2).
    argv : sequence of str
        The command line after ``emotionkit`` (without ``--nproc``).

    Returns
    -------
    int
        torchrun's exit status (non-zero when any process failed).

    Raises
    ------
    InvalidOptionError
        ``nproc`` below 2.
    """
    if nproc < 2:
        raise InvalidOptionError(f"--nproc must be >= 2 to start several processes, got {nproc}.")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "emotionkit",
        *argv,
    ]
    return subprocess.run(command, check=False).returncode
