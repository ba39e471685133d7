"""Several processes on one or more machines: launching, process groups, shards, gathers and global batch norm.

How a multi-process run works (``--trainer.devices N`` / ``--devices N``, or ``torchrun ... -m ssmad train``):

* :func:`launch` starts ``N`` copies of the same ``ssmad`` command through PyTorch's elastic launcher (one machine,
  a free local port). Each copy sees ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in its environment, exactly as
  under ``torchrun`` — so multi-node runs are plain ``torchrun`` calls with the same options;
* :func:`setup` joins the process group (gloo on CPUs, nccl on GPUs; process ``k`` of a machine uses ``cuda:k``),
  keeps the log output of every process but rank 0 to errors, and leaves the group at exit;
* training: every global batch of the single-process order is split into ``N`` contiguous parts
  (:class:`~ssmad.engine.data.ShardedBatchSampler`), DistributedDataParallel averages the gradients, and the
  per-process losses are weighted so the averaged gradient is the gradient of the mean loss over the global batch.
  Batch-norm layers that train use the statistics of the global batch (:func:`convert_batchnorm`, also on CPUs, where
  PyTorch's ``SyncBatchNorm`` does not run). With ``trainer.deterministic`` the weights therefore equal those of one
  process with the same batch, up to float rounding, whenever the network has no dropout;
* evaluation: each process scores its own contiguous range of whole batches (:func:`shard_range`; no padding, no
  duplicate), the results are gathered to rank 0 in the original order and the metrics are computed there from
  the complete arrays, so they are those of one process;
* only rank 0 writes files; a value decided there (the run folder, metrics, thresholds) reaches the others
  through :func:`run_on_main` / :func:`broadcast`, an error raised there is raised on every process.

Without a process group (the normal single-process case) every helper is a no-op: ranks are 0, the world has one
process, gathers return their input.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from ..errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "all_reduce_sum",
    "broadcast",
    "check_devices",
    "convert_batchnorm",
    "env_world_size",
    "gather_to_main",
    "in_launched_worker",
    "is_active",
    "is_main",
    "launch",
    "rank",
    "revert_batchnorm",
    "run_on_main",
    "setup",
    "shard_range",
    "world_size",
]

T = TypeVar("T")

#: Process group of the object collectives (gloo: pickled results stay in host memory, also next to nccl).
_OBJECT_GROUP: Any = None

#: Environment variables a worker started by the elastic launcher (or ``torchrun``) finds.
ENV_VARS: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


# ------------------------------------------------------------------------------------------ who am I
def env_world_size() -> int:
    """``WORLD_SIZE`` of the environment (1 when the process was not started by a launcher)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def in_launched_worker() -> bool:
    """Whether this process is one of several started by ``torchrun`` / :func:`launch`."""
    return all(k in os.environ for k in ENV_VARS) and env_world_size() > 1


def is_active() -> bool:
    """Whether a process group with more than one process is in use."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """Whether this process writes files and logs (rank 0, or the only process)."""
    return rank() == 0


# ------------------------------------------------------------------------------------------ start and join
def check_devices(devices: int, device: str = "auto", *, option: str = "--devices") -> int:
    """Validate a requested process count against the device.

    Args:
        devices: Processes requested.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (what the command will run on).
        option: The option name for the messages.

    Returns:
        ``devices`` as an int.

    Raises:
        ConfigError: ``devices < 1``, more processes than GPUs on CUDA, or ``cuda:N`` with several processes.
    """
    try:
        n = int(devices)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a whole number ≥ 1, got {devices!r}. Fix: e.g. {option} 2.") from None
    if n < 1:
        raise ConfigError(f"{option} must be ≥ 1, got {n}. Fix: pass the number of processes, e.g. {option} 2.")
    name = str(device)
    cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    if cuda and n > 1:
        if ":" in name:
            raise ConfigError(
                f"{option} {n} with device {name!r}: several processes cannot share one named GPU (process k uses "
                f"cuda:k). Fix: pass --device cuda (or auto)."
            )
        available = torch.cuda.device_count()
        if n > available:
            raise ConfigError(
                f"{option} {n} asks for {n} GPU processes but PyTorch sees {available} GPU(s). Fix: pass "
                f"{option} {max(available, 1)} or fewer, or run on the CPU with --device cpu."
            )
    return n


def _device_for(device: str | torch.device) -> torch.device:
    """The device of this process: ``cuda`` (or ``auto`` on a GPU machine) → ``cuda:LOCAL_RANK``."""
    from .data import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and in_launched_worker() and dev.index is None:
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"process with LOCAL_RANK {local} has no GPU of its own (PyTorch sees {torch.cuda.device_count()}). "
                "Fix: start at most one process per GPU (--nproc-per-node / --devices)."
            )
        dev = torch.device("cuda", local)
    return dev


def setup(device: str | torch.device = "auto") -> torch.device:
    """Join the process group described by the environment (if any) and return this process's device.

    Idempotent. In a single process it only resolves ``device``.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The device to use (``cuda:LOCAL_RANK`` for GPU workers).
    """
    import torch.distributed as dist

    dev = _device_for(device)
    if not in_launched_worker() or (dist.is_available() and dist.is_initialized()):
        return dev
    if not dist.is_available():  # pragma: no cover - every official build has it
        raise ConfigError("this PyTorch build has no torch.distributed; multi-process runs are not possible")
    global _OBJECT_GROUP
    # torch.distributed.nn binds ``group.WORLD`` as a default argument when first imported; imported after the
    # group exists, those defaults would keep the group (and gloo's threads) alive past destroy_process_group,
    # into interpreter shutdown, where a gloo thread freeing a finished broadcast aborts the process
    import torch.distributed.nn

    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl", device_id=dev)
        _OBJECT_GROUP = dist.new_group(backend="gloo")
    else:
        dist.init_process_group(backend="gloo")
        _OBJECT_GROUP = None  # the default group is gloo already
    atexit.register(_teardown)
    if dist.get_rank() != 0:  # logs and progress come from rank 0 only
        logging.getLogger("ssmad").setLevel(logging.ERROR)
    logger.info(
        "process group: %d processes (%s), this is rank %d on %s",
        dist.get_world_size(),
        dist.get_backend(),
        dist.get_rank(),
        dev,
    )
    return dev


def _teardown() -> None:
    import torch.distributed as dist

    global _OBJECT_GROUP
    _OBJECT_GROUP = None  # the last reference to the GPU runs' gloo group: destroying it stops its threads
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(argv: Sequence[str], nproc: int, device: str = "auto") -> int:
    """Run ``python -m ssmad ARGV`` in ``nproc`` local processes through PyTorch's elastic launcher.

    The parent waits for them and returns the first non-zero exit code (0 when every process succeeded). CPU
    workers get ``OMP_NUM_THREADS = cores // nproc`` unless it is set.

    Args:
        argv: The command line of the workers (after ``ssmad``).
        nproc: Number of processes (≥ 2).
        device: The device option of the command (picks the thread count for CPU workers).

    Returns:
        An exit code.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if "OMP_NUM_THREADS" not in os.environ and not (
        str(device).startswith("cuda") or (str(device) == "auto" and torch.cuda.is_available())
    ):
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    for name, known in list(logging.root.manager.loggerDict.items()):  # the launcher's chatter; failures stay
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")) and isinstance(
            known, logging.Logger
        ):
            known.setLevel(logging.ERROR)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    logger.info("starting %d processes: %s -m ssmad %s", nproc, sys.executable, " ".join(argv))
    try:
        elastic_launch(config, sys.executable)("-u", "-m", "ssmad", *argv)
    except ChildFailedError as err:
        codes = [f.exitcode for _, f in sorted(err.failures.items())]
        code = next((c for c in codes if c and c > 0), 1)
        logger.debug("worker failures: %s", err.failures)
        return int(code)
    return 0


# ------------------------------------------------------------------------------------------ communication
def broadcast(value: T, src: int = 0) -> T:
    """``value`` of rank ``src`` on every process (pickled; small objects only)."""
    import torch.distributed as dist

    if not is_active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src, group=_object_group())
    return box[0]


def run_on_main(fn: Callable[[], T], *, share: bool = True) -> T:
    """Call ``fn`` on rank 0 only; its exception is raised on every process (a collective call).

    Args:
        fn: The work of rank 0.
        share: Return rank 0's result on every process; ``False``: the other ranks get ``None`` (for results too
            big to send around).
    """
    if not is_active():
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    result: Any = None
    if is_main():
        try:
            result = fn()
            outcome = (True, result if share else None)
        except Exception as err:
            outcome = (False, err)
    ok, value = broadcast(outcome)
    if not ok:
        raise value  # rank 0's exception (unpickled on the other ranks)
    return result if is_main() else value


def gather_to_main(value: T) -> list[T] | None:
    """Every process's ``value`` in rank order on rank 0 (``None`` elsewhere); ``[value]`` in one process."""
    import torch.distributed as dist

    if not is_active():
        return [value]
    out: list[Any] | None = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(value, out, dst=0, group=_object_group())
    return out


def _object_group() -> Any:
    """The gloo group for pickled objects made by :func:`setup` (``None``: the default group)."""
    return _OBJECT_GROUP


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sums over the processes of a few numbers (float64)."""
    import torch.distributed as dist

    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    if is_active():
        dist.all_reduce(t)
    return t.tolist()


# ------------------------------------------------------------------------------------------ shards
def shard_range(n: int, batch_size: int = 1, *, rank_: int | None = None, world: int | None = None) -> range:
    """This process's contiguous share of ``n`` items, no padding and no overlap.

    Whole batches of ``batch_size`` are dealt out when there are at least as many batches as processes, so every
    item is computed in the same batch as in a single process; otherwise the items are split evenly.

    Args:
        n: Number of items.
        batch_size: Batch of the single-process loop.
        rank_: Rank (default: this process's).
        world: Number of processes (default: the group's).

    Returns:
        A range of item indices (possibly empty); the ranges of ranks ``0 … world-1`` concatenate to ``range(n)``.
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    batches = -(-n // max(1, batch_size))
    if batches >= w:
        lo_b, hi_b = r * batches // w, (r + 1) * batches // w
        return range(min(n, lo_b * batch_size), min(n, hi_b * batch_size))
    return range(r * n // w, (r + 1) * n // w)


# ------------------------------------------------------------------------------------------ global batch norm
class _SumOverProcesses(torch.autograd.Function):
    """Differentiable all-reduce (sum): every process gets the sum; the gradient is summed the same way."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        import torch.distributed as dist

        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _SumOverProcesses.apply(grad, ctx.group), None


def _sum_over_processes(tensor: torch.Tensor, group: Any) -> torch.Tensor:
    return _SumOverProcesses.apply(tensor, group)


class _GlobalBatchNormMixin:
    """Batch norm whose training statistics are those of the global batch (all processes together).

    The per-channel sums travel through a differentiable all-reduce (:class:`_SumOverProcesses`), so the
    gradient is that of one batch norm over the concatenated batch. Two passes (mean, then centred squares) keep
    the variance as accurate as PyTorch's own. In eval mode, or without a process group, this is the plain layer.
    """

    _sync_group: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn: Any = self
        if not (bn.training and is_active()):
            return super().forward(x)  # type: ignore[misc]
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        sums = _sum_over_processes(torch.cat([x.sum(dims), count]), bn._sync_group)
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(shape)
        var = _sum_over_processes((centred * centred).sum(dims), bn._sync_group) / n
        y = centred * torch.rsqrt(var + bn.eps).view(shape)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        if bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (n.detach() / (n.detach() - 1).clamp_min(1))
                bn.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


_GLOBAL_CLASSES: dict[type, type] = {}


def _global_class(cls: type) -> type:
    if cls not in _GLOBAL_CLASSES:
        _GLOBAL_CLASSES[cls] = type(f"Global{cls.__name__}", (_GlobalBatchNormMixin, cls), {"_ssmad_base": cls})
    return _GLOBAL_CLASSES[cls]


def convert_batchnorm(net: nn.Module) -> int:
    """Make every batch-norm layer of ``net`` use global-batch statistics while a process group is active.

    The layers keep their parameters, buffers and ``state_dict`` keys (only their class changes), so checkpoints
    are unaffected; :func:`revert_batchnorm` restores the classes. A collective call: every process must call it.

    Returns:
        The number of converted layers (0 without a process group).
    """
    import torch.distributed as dist

    if not is_active():
        return 0
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    layers = [m for m in layers if not isinstance(m, _GlobalBatchNormMixin | nn.SyncBatchNorm)]
    if not layers:
        return 0
    # a group of its own, so these all-reduces never interleave with DistributedDataParallel's gradient buckets
    group = dist.new_group(backend=dist.get_backend())
    for m in layers:
        m.__class__ = _global_class(type(m))
        setattr(m, "_sync_group", group)  # noqa: B010 - an attribute of the swapped-in class only
    return len(layers)


def revert_batchnorm(net: nn.Module) -> None:
    """Undo :func:`convert_batchnorm`."""
    for m in net.modules():
        if isinstance(m, _GlobalBatchNormMixin):
            m.__class__ = type(m)._ssmad_base  # type: ignore[attr-defined]
            m.__dict__.pop("_sync_group", None)
