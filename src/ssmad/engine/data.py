"""Data loading for the loops: devices, loaders, in-memory image sets, and skipping unreadable files.

A single corrupt file in the middle of a test set must not throw away the results of every other image, so
:class:`SkipUnreadable` turns an :class:`~ssmad.errors.InputError` raised while decoding one item into a marker,
and :func:`collate_skipping` drops the marked items from the batch and reports them (a warning naming the file).
The loops collect the skipped files and write them to the run's outputs.

:class:`ArrayImageDataset` wraps images already in memory (``fit(np_array)``), and :class:`PredictionDataset`
adds the original image size to :class:`~ssmad.data.InferenceDataset`'s items so maps can be returned at the
resolution of the user's images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from ..data.images import InferenceDataset
from ..data.transforms import Preprocessing, as_rgb_image, preprocess_image
from ..errors import ConfigError, InputError
from .seed import worker_init_fn

logger = logging.getLogger(__name__)

__all__ = [
    "ArrayImageDataset",
    "PredictionDataset",
    "ShardedBatchSampler",
    "SkipUnreadable",
    "collate_skipping",
    "make_loader",
    "resolve_device",
]

_ERROR = "_error"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; other names are checked.

    Raises:
        ConfigError: CUDA was asked for but is not available.
    """
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was requested but PyTorch sees no CUDA device. Fix: use --trainer.device cpu (or auto), "
            "or install a CUDA build of PyTorch."
        )
    return dev


class SkipUnreadable(Dataset):
    """Wrap a dataset so that an item whose file cannot be decoded becomes a marker instead of an exception."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.base[index]
        except InputError as err:
            msg = str(err)
            items = getattr(self.base, "items", None)
            if isinstance(items, list) and index < len(items) and str(items[index][1]) not in msg:
                msg = f"{items[index][1]}: {msg}"
            return {_ERROR: msg, "index": index}


def collate_skipping(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate the readable items; the messages of the others go to ``batch["skipped"]`` (a warning each)."""
    good = [b for b in batch if _ERROR not in b]
    skipped = [b[_ERROR] for b in batch if _ERROR in b]
    for msg in skipped:
        logger.warning("skipped an unreadable input: %s", msg)
    out: dict[str, Any] = default_collate(good) if good else {}
    out["skipped"] = skipped
    return out


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """A loader over ``dataset`` that skips unreadable items (see :class:`SkipUnreadable`).

    ``generator`` drives the shuffle and the workers' seeds; evaluation loaders get a fixed private one, so they
    never draw from the global generator (which would change the training stream).

    ``shard=(rank, world)`` with ``world > 1`` yields this process's part of every batch of the single-process
    loader with the same arguments (:class:`ShardedBatchSampler`): the sampler draws
    from ``generator`` after the loader's worker seed, as the single-process loader does, so the union of the
    parts of step ``t`` is its batch ``t``.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if shard is not None and shard[1] > 1:
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

        base = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        return DataLoader(
            SkipUnreadable(dataset),
            batch_sampler=ShardedBatchSampler(BatchSampler(base, batch_size, drop_last), shard[0], shard[1]),
            num_workers=num_workers,
            collate_fn=collate_skipping,
            generator=generator,
            worker_init_fn=worker_init_fn if num_workers else None,
            pin_memory=pin_memory,
            persistent_workers=False,
        )
    return DataLoader(
        SkipUnreadable(dataset),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        generator=generator,
        worker_init_fn=worker_init_fn if num_workers else None,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


class ArrayImageDataset(Dataset):
    """Normal images held in memory (arrays, tensors or Pillow images), preprocessed like files.

    Args:
        images: A stacked array ``(N, H, W[, C])`` / ``(N, C, H, W)`` or a list of single images.
        preprocessing: The preprocessing to apply.
        category: Category given to every image.
    """

    def __init__(self, images: Any, preprocessing: Preprocessing, category: str = "array") -> None:
        self._inner = InferenceDataset(images, preprocessing)
        self.category = category

    def __len__(self) -> int:
        return len(self._inner)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self._inner[index]
        h, w = item["image"].shape[-2:]
        return {
            "image": item["image"],
            "mask": torch.zeros(1, h, w),
            "has_mask": True,
            "label": 0,
            "category": self.category,
            "defect_type": "good",
            "image_path": item["image_path"],
        }


class PredictionDataset(InferenceDataset):
    """:class:`~ssmad.data.InferenceDataset` whose items also carry ``orig_hw``, the input image's ``(H, W)``."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, name = self.items[index]
        img = as_rgb_image(source)
        return {
            "image": preprocess_image(img, self.preprocessing),
            "image_path": name,
            "index": index,
            "orig_hw": torch.tensor([img.height, img.width]),
        }


class ShardedBatchSampler(Sampler[list[int]]):
    """This process's part of every batch of a single-process batch sampler.

    Batch ``t`` of ``batches`` is split into ``world`` contiguous parts (sizes differ by at most one); process
    ``rank`` gets part ``rank``. The union of the parts of step ``t`` is therefore exactly batch ``t`` of one
    process. Batches with fewer items than processes are left out (every process must get at least one item).

    Args:
        batches: The single-process batch sampler (e.g. ``BatchSampler(RandomSampler(ds, generator=g), B, ...)``).
        rank_: This process's rank.
        world: Number of processes.
    """

    def __init__(self, batches: Sampler[list[int]], rank_: int, world: int) -> None:
        self.batches = batches
        self.rank = rank_
        self.world = world

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) < self.world:
                logger.warning("a batch of %d image(s) for %d processes was left out", len(batch), self.world)
                continue
            lo = self.rank * len(batch) // self.world
            hi = (self.rank + 1) * len(batch) // self.world
            yield list(batch[lo:hi])

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]
