"""Training in several processes: one per GPU, or several CPU processes, on one machine or many,
started by PyTorch's launcher (`torchrun`), which gives each process RANK, WORLD_SIZE and
LOCAL_RANK in its environment.

`start` joins the processes into one group (NCCL on CUDA, gloo on the CPU) and returns a
`Coordinator`, through which the training loop does everything that needs the others:
- `agree`: one small message per step on a CPU (gloo) group. Process 0's clock decides
  whether the run is over, where the schedule stands, and whether a validation or a state file
  is due; any process's stop request (Ctrl-C, SIGTERM) stops every process at the same step.
- `sum_`: a sum over the processes on the training device (the running per-level loss
  statistics, the logged figures).
- `wait`: the others wait while process 0 validates or exports.
- `together`: a phase without collectives (planning, loading the data) that fails on one
  process fails on all of them, with one line each, instead of leaving the others waiting.
A lost process (its sockets close) turns into one `AecError` line on the others.

Without torchrun (WORLD_SIZE unset or 1) the plain `Coordinator` does all of this locally and
nothing changes. The batch is split, not multiplied: `--batch-size` is the global batch, and
each process takes its own rows of it (`BatchPart`); see training/data.py.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import AecError

# How long a process waits for process 0 at a validation, a trial export or a saved state. They
# can take many minutes on a CPU; a process that dies is noticed at once (its sockets close).
WAIT_TIMEOUT = datetime.timedelta(hours=2)
# Words in the errors that gloo and NCCL raise when another process is gone.
_LOST = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe", "timed out")


def lost_contact(e: BaseException) -> bool:
    """Whether an error from a collective (such as DDP's gradient reduction) says that another
    process is gone."""
    import torch.distributed as dist

    text = str(e).lower()
    return isinstance(e, dist.DistError) or any(word in text for word in _LOST)


def _gist(e: BaseException) -> str:
    """The first sentence of a gloo or NCCL error, without the source location in front."""
    lines = str(e).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else ""
    return text.split(". ")[0].rstrip(".") or type(e).__name__


class Repeated(AecError):
    """The failure of a process other than process 0 when every process failed in the same
    phase (the same usage error, most often): process 0 reports it, the others leave quietly
    with its exit status."""

    def __init__(self, error: AecError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Control:
    """What process 0 decides for every process after a step (or before the first)."""

    progress: float  # of the schedule, 0..1: every process sets the same learning rate
    finished: bool = False  # the steps, the training time or the deadline are reached
    stop: bool = False  # a stop was requested (SIGINT / SIGTERM) on any process
    validate: bool = False  # a validation is due by training time
    checkpoint: bool = False  # state.pt is due by wall time


@dataclass(frozen=True)
class BatchPart:
    """The rows of each step's global batch that one process trains on."""

    index: int = 0  # the process's rank
    count: int = 1  # the number of processes

    def rows(self, batch: int) -> slice:
        """The rows of a global batch of `batch` crops (a multiple of `count`)."""
        per = batch // self.count
        return slice(self.index * per, (self.index + 1) * per)


class Coordinator:
    """One process on its own: every decision is its own and every wait returns at once."""

    rank = 0
    world = 1

    @property
    def is_main(self) -> bool:
        """Whether this process logs, validates, writes the state files and exports."""
        return self.rank == 0

    @property
    def part(self) -> BatchPart:
        return BatchPart(self.rank, self.world)

    def label(self) -> str:
        """How messages name this process ("" alone)."""
        return ""

    def agree(self, mine: Control) -> Control:
        return mine

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """tensor, summed in place over the processes."""
        return tensor

    def wait(self) -> None:
        """Return once every process has called it."""

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step calls: DistributedDataParallel over the processes."""
        return model

    def lost(self, e: BaseException) -> AecError:
        """The error a process reports when another one is gone (run_training adds which
        process this is)."""
        return AecError(
            "lost the other processes of the run (one failed or was stopped; its own message "
            f"says why): {_gist(e)}"
        )

    @contextmanager
    def together(self, what: str) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


class ProcessGroup(Coordinator):
    """A process of a run started by torchrun (`start` builds it)."""

    def __init__(self, rank: int, world: int, device: torch.device):
        import torch.distributed as dist

        self.rank, self.world, self.device = rank, world, device
        self._dist = dist
        # The per-step messages and the waits go over gloo on the CPU, whatever the device: no
        # CUDA synchronisation, and a long timeout for the waits at process 0's validations.
        self._control = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)

    def label(self) -> str:
        return f"process {self.rank} of {self.world}"

    def _collective(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            raise self.lost(e) from e

    def agree(self, mine: Control) -> Control:
        main = self.is_main
        # Process 0's figures, and the stop flags of all: a sum, as the others send zeros.
        t = torch.tensor(
            [
                mine.progress if main else 0.0,
                float(mine.finished and main),
                float(mine.stop),
                float(mine.validate and main),
                float(mine.checkpoint and main),
            ],
            dtype=torch.float64,
        )
        self._collective(self._dist.all_reduce, t, group=self._control)
        progress, finished, stop, validate, checkpoint = t.tolist()
        return Control(progress, finished > 0, stop > 0, validate > 0, checkpoint > 0)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        self._collective(self._dist.all_reduce, tensor)
        return tensor

    def wait(self) -> None:
        self._collective(self._dist.barrier, group=self._control)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # Every parameter gets a gradient each step (the rate of z reaches the density's), so
        # no search for unused ones; the model has no buffers to broadcast.
        return self._collective(
            DistributedDataParallel, model, device_ids=ids, gradient_as_bucket_view=True
        )

    @contextmanager
    def together(self, what: str) -> Iterator[None]:
        """Run `what` (a phase with no collectives inside); if it fails on any process, every
        process fails: the one that failed with its own error, the others with a line that
        points to it."""
        try:
            yield
        except BaseException as e:
            failed = self._flag_failure()
            if failed == self.world and not self.is_main and isinstance(e, AecError):
                raise Repeated(e) from e
            raise
        failed = self._flag(0.0)
        if failed:
            raise AecError(
                f"stopped, as {failed:g} other process(es) failed while {what} (their own "
                "messages say why)"
            )

    def _flag_failure(self) -> float:
        """Tell the others that this process failed; how many did (0 if they are gone)."""
        try:
            return self._flag(1.0)
        except AecError:
            return 0.0

    def _flag(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64)
        self._collective(self._dist.all_reduce, t, group=self._control)
        return t.item()

    def close(self) -> None:
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


def launched() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when started by torchrun (or any launcher that sets
    RANK and WORLD_SIZE) with more than one process; None otherwise."""
    world = os.environ.get("WORLD_SIZE", "1")
    try:
        if int(world) <= 1:
            return None
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as e:
        raise AecError(
            f"WORLD_SIZE={world} but RANK or LOCAL_RANK is missing or not a number ({e})"
        ) from e
    return rank, int(world), local


def start(device: torch.device) -> tuple[Coordinator, torch.device]:
    """The coordinator of this process and its training device: under torchrun, CUDA device
    LOCAL_RANK (NCCL) or the CPU (gloo); otherwise a plain Coordinator and `device` as it is."""
    found = launched()
    if found is None:
        return Coordinator(), device
    rank, world, local = found
    import torch.distributed as dist

    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise AecError(
                f"process {rank} of {world} has LOCAL_RANK {local}, but this machine has "
                f"{count} GPU(s): start at most {count} processes per machine "
                "(torchrun --nproc-per-node)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise AecError(f"training in several processes needs CUDA or the CPU, not {device}")
    try:
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, rank=rank, world_size=world, **kwargs)
    except (RuntimeError, ValueError) as e:
        raise AecError(
            f"process {rank} of {world}: could not join the other processes: {_gist(e)}"
        ) from e
    return ProcessGroup(rank, world, device), device
