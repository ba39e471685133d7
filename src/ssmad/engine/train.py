"""The training loop of the feature-reconstruction detectors (MambaAD, RD4AD), per spec A.9.

One iteration: normal images → ``enc, dec = net(images)`` (the frozen encoder's features and the decoder's
reconstruction of them) → ``loss = net.loss(enc, dec)`` → backward → global grad-norm clip (5) → AdamW step →
per-iteration learning-rate schedule (a single ×0.1 step at 80 % of all iterations).

Reproducibility and resume:

* the data order of epoch ``e`` comes from its own generator (:func:`~ssmad.engine.seed.epoch_generator`), so it
  does not depend on how the run got there;
* every ``checkpoint_every`` epochs the network, AdamW moments, scheduler, random states and loss history are
  saved (:func:`~ssmad.engine.checkpoint.save_training_state`); ``resume=True`` restarts after the newest saved
  epoch. A run killed at any point and resumed therefore replays exactly the iterations an uninterrupted run
  performs and ends with the same weights (bit-identical on a CPU with a fixed thread count; use
  ``deterministic=True`` on GPUs);
* periodic evaluation runs on a private generator and does not disturb the training stream.

Callbacks (``on_iteration(epoch, iteration, loss)`` and ``on_epoch_end(epoch, record)``) let the caller observe
or stop a run; an exception raised by a callback propagates after nothing else has been written.

Several processes (a process group is active, see :mod:`ssmad.engine.distributed`): ``batch_size`` stays the
global batch; each process trains on its contiguous part of every single-process batch, the network is wrapped
in DistributedDataParallel and its batch-norm layers use global statistics, and each process's mean loss is
weighted by ``n_local · world / n_global`` so the averaged gradient is that of the mean loss over the global
batch. The reported loss is the global mean. Only rank 0 saves the resume state and shows progress; every
process reads the state on resume. Dropout draws differ from a single process (each rank has its own stream).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..errors import InputError
from . import distributed
from .checkpoint import latest_training_state, load_training_state, save_training_state
from .config import TrainerConfig
from .data import make_loader
from .optim import build_optimizer, build_scheduler
from .progress import TrainProgress
from .seed import epoch_generator, set_rng_state

logger = logging.getLogger(__name__)

__all__ = ["FeatureReconstructionNet", "TrainCallbacks", "effective_batch_size", "train_network"]


class FeatureReconstructionNet(Protocol):
    """What the loops need from a network (MambaAD, RD4AD): pure ``nn.Module`` methods, no I/O."""

    def __call__(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Normalised images ``(B, 3, H, W)`` → (encoder features, decoder features), one map per scale."""
        ...

    def loss(self, enc: Sequence[Tensor], dec: Sequence[Tensor]) -> Tensor:
        """The scalar training loss."""
        ...

    def anomaly_map(self, enc: Sequence[Tensor], dec: Sequence[Tensor], *args: Any, **kwargs: Any) -> Tensor:
        """Maps ``(B, H, W)`` or ``(B, 1, H, W)`` at the input resolution, higher = more anomalous."""
        ...


class TrainCallbacks(Protocol):
    """Optional hooks; any attribute may be missing."""

    def on_iteration(self, epoch: int, iteration: int, loss: float) -> None:
        """After every optimiser step (``iteration`` counts over the whole run)."""
        ...

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """After every epoch, with its history record."""
        ...


def effective_batch_size(n_images: int, cfg: TrainerConfig) -> int:
    """The batch size used for ``n_images`` training images (one batch of all images when there are fewer).

    Raises:
        InputError: There is no training image.
    """
    if n_images < 1:
        raise InputError(
            "there is no training image. Fix: point the data root at a folder with <category>/train/good/."
        )
    if cfg.drop_last and n_images < cfg.batch_size:
        logger.warning(
            "only %d training image(s) for a batch of %d with drop_last: training with batches of %d",
            n_images,
            cfg.batch_size,
            n_images,
        )
        return n_images
    return cfg.batch_size


def _trainable(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


def train_network(
    net: nn.Module,
    dataset: Dataset,
    cfg: TrainerConfig,
    *,
    device: torch.device,
    state_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    evaluate: Callable[[int], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train ``net`` on the normal images of ``dataset``.

    The caller seeds the generators and builds ``net`` before calling (so the initial weights depend on the seed
    only); this function moves ``net`` to ``device`` and leaves it in eval mode.

    Args:
        net: The network (:class:`FeatureReconstructionNet`); only parameters with ``requires_grad`` train.
        dataset: Items with an ``"image"`` ``(3, H, W)`` tensor (e.g. :class:`~ssmad.data.AnomalyImageDataset`).
        cfg: Trainer settings.
        device: Where to train.
        state_dir: Folder of the resume state (``None``: no checkpoints).
        resume: Continue from the newest state in ``state_dir`` (a fresh start when there is none).
        callbacks: Objects with optional ``on_iteration`` / ``on_epoch_end`` methods.
        evaluate: ``evaluate(epoch) -> metrics``, called every ``cfg.eval_every`` epochs except the last (the
            caller evaluates the final model itself).

    Returns:
        The history: one record per epoch, ``{"epoch", "loss", "lr", "seconds", "iterations"}`` (+ ``"metrics"``
        after a periodic evaluation).
    """
    n = len(dataset)  # type: ignore[arg-type]
    batch = effective_batch_size(n, cfg)
    world, rank = distributed.world_size(), distributed.rank()
    if batch < world:
        raise InputError(
            f"the training batch of {batch} image(s) cannot be split over {world} processes. Fix: set "
            f"trainer.batch_size to at least {world} (it is the global batch), or use fewer processes."
        )
    per_epoch = n // batch if cfg.drop_last else math.ceil(n / batch)
    if world > 1 and not cfg.drop_last and 0 < n % batch < world:
        per_epoch -= 1  # the last, too small batch is left out by every process (ShardedBatchSampler)
    total = per_epoch * cfg.epochs
    lr = cfg.learning_rate(batch)
    net.to(device)
    optimizer = build_optimizer(net, lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    scheduler = build_scheduler(optimizer, total, decay_at=cfg.decay_at, factor=cfg.decay_factor)
    history: list[dict[str, Any]] = []
    start_epoch, iteration = 0, 0

    if resume and state_dir is not None:
        latest = latest_training_state(state_dir)
        if latest is None:
            logger.info("no saved training state in %s: starting from scratch", state_dir)
        else:
            state = load_training_state(latest)
            saved_total = state["extra"].get("total_iterations")
            if saved_total is not None and int(saved_total) != total:
                raise InputError(
                    f"{latest}: the saved run had {saved_total} iterations in total, this one has {total} (other "
                    "epochs, batch size or training images). Fix: resume with the configuration saved in the run "
                    "folder's config.yaml, or start a new run."
                )
            net.load_state_dict(state["model"], strict=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng_tensors"], state["rng_json"])  # rank 0's state, saved by rank 0
            start_epoch, iteration, history = state["epoch"], state["iteration"], state["history"]
            logger.info("resumed from %s (epoch %d/%d, iteration %d)", latest, start_epoch, cfg.epochs, iteration)

    logger.info(
        "training on %d images, %d epoch(s) × %d iteration(s), batch %d, lr %.3g, device %s",
        n,
        cfg.epochs,
        per_epoch,
        batch,
        lr,
        device,
    )
    params = _trainable(net)
    model: nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        if rank > 0:  # a random stream of its own (dropout); rank 0 keeps the single-process stream
            torch.manual_seed((int(cfg.seed) * 1_000_003 + 7919 * rank + start_epoch) % 2**63)
        converted = distributed.convert_batchnorm(net)
        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
        logger.info(
            "%d processes, %d image(s) each per step; %d batch-norm layer(s) global", world, batch // world, converted
        )
    progress = TrainProgress(
        total, cfg.epochs, start_iter=iteration, enabled=cfg.progress and rank == 0, log_every=cfg.log_every
    )
    try:
        with progress:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                loader = make_loader(
                    dataset,
                    batch,
                    shuffle=True,
                    drop_last=cfg.drop_last,
                    num_workers=cfg.num_workers,
                    generator=epoch_generator(cfg.seed, epoch),
                    pin_memory=device.type == "cuda",
                    shard=(rank, world) if world > 1 else None,
                )
                model.train()
                t0 = time.perf_counter()
                losses: list[float] = []
                lr_used = optimizer.param_groups[0]["lr"]
                for it, item in enumerate(loader, start=1):
                    if world > 1:
                        # every process must take part in every step: skip it together when one has no image
                        n_local = int(item["image"].shape[0]) if "image" in item else 0
                        n_global, empty = distributed.all_reduce_sum([n_local, float(n_local == 0)], device)
                        if empty:
                            logger.warning("step %d of epoch %d skipped: a process had no readable image", it, epoch)
                            continue
                    elif "image" not in item:  # every image of the batch was unreadable
                        continue
                    images = item["image"].to(device, non_blocking=True)
                    enc, dec = model(images)
                    loss = net.loss(enc, dec)
                    value = float(loss.detach())
                    if world > 1:
                        # DDP averages gradients over processes; this weight makes the average the gradient of
                        # the mean loss over the global batch (parts may differ by one image)
                        loss = loss * (images.shape[0] * world / n_global)
                        value = distributed.all_reduce_sum([value * images.shape[0]], device)[0] / n_global
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"the training loss became {value} at epoch {epoch}, iteration {it}; lower the learning "
                            "rate (trainer.base_lr) or check the input images"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.clip_grad:
                        torch.nn.utils.clip_grad_norm_(params, float(cfg.clip_grad))
                    optimizer.step()
                    lr_used = optimizer.param_groups[0]["lr"]
                    scheduler.step()
                    iteration += 1
                    losses.append(value)
                    progress.step(epoch, it, per_epoch, value)
                    for cb in callbacks:
                        if hasattr(cb, "on_iteration"):
                            cb.on_iteration(epoch, iteration, value)
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "loss": sum(losses) / len(losses) if losses else float("nan"),
                    "lr": lr_used,  # the rate of the epoch's last step (the scheduler already points past it)
                    "seconds": time.perf_counter() - t0,
                    "iterations": len(losses),
                }
                progress.end_epoch(epoch, per_epoch, record["loss"])
                if evaluate is not None and cfg.eval_every and epoch % cfg.eval_every == 0 and epoch != cfg.epochs:
                    net.eval()
                    record["metrics"] = evaluate(epoch)
                history.append(record)
                for cb in callbacks:
                    if hasattr(cb, "on_epoch_end"):
                        cb.on_epoch_end(epoch, record)
                if (
                    rank == 0
                    and state_dir is not None
                    and cfg.checkpoint_every
                    and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs)
                ):
                    save_training_state(
                        state_dir,
                        model=net,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        epoch=epoch,
                        iteration=iteration,
                        history=history,
                        extra={"total_iterations": total, "batch_size": batch, "lr": lr},
                    )
    finally:
        if world > 1:
            distributed.revert_batchnorm(net)
    net.eval()
    return history
