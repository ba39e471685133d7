"""Records held as a few numpy arrays: small, and shared by DataLoader workers without copying.

A list of :class:`~ssmad.data.records.ImageRecord` costs about 500 bytes per image (the record, two ``Path``
objects and their strings): ~77 MB for Real-IAD's 151,000 images. Worse, DataLoader workers are forked from the
training process and every record they touch gets its reference count written, so each worker slowly copies the
pages of the whole list ("copy-on-read", pytorch/pytorch#13246): 8 workers, 8 copies. :class:`RecordTable` keeps
the same information in arrays whose data Python never writes to: all paths UTF-8 encoded in one ``uint8`` buffer
with an ``int64`` offset per path, labels as ``int8`` and category / defect type / split as small integer codes
into short tuples of names. Indexing it gives back the :class:`ImageRecord`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from .records import ImageRecord


def _pack(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(buffer, offsets)``: the UTF-8 bytes of all ``texts`` back to back, and ``len(texts) + 1`` offsets."""
    encoded = [t.encode("utf-8", "surrogateescape") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return buffer, offsets


def _codes(values: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """``(names, codes)`` with ``names[codes[i]] == values[i]``."""
    names = tuple(sorted(set(values)))
    index = {n: i for i, n in enumerate(names)}
    return names, np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values))


class RecordTable(Sequence[ImageRecord]):
    """An immutable sequence of records stored column by column (see the module docstring).

    Args:
        records: The records, in the order kept.

    Example:
        >>> table = RecordTable(discover("datasets/Real-IAD"))  # doctest: +SKIP
        >>> table[0].image_path, len(table)  # doctest: +SKIP
    """

    def __init__(self, records: Iterable[ImageRecord]) -> None:
        rows = list(records)
        self._images, self._image_offsets = _pack([str(r.image_path) for r in rows])
        self._masks, self._mask_offsets = _pack(["" if r.mask_path is None else str(r.mask_path) for r in rows])
        self._labels = np.fromiter((r.label for r in rows), dtype=np.int8, count=len(rows))
        self._category_names, self._categories = _codes([r.category for r in rows])
        self._defect_names, self._defects = _codes([r.defect_type for r in rows])
        self._split_names, self._splits = _codes([r.split for r in rows])

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    @staticmethod
    def _text(buffer: np.ndarray, offsets: np.ndarray, i: int) -> str:
        return buffer[offsets[i] : offsets[i + 1]].tobytes().decode("utf-8", "surrogateescape")

    def _row(self, i: int) -> ImageRecord:
        mask = self._text(self._masks, self._mask_offsets, i)
        return ImageRecord(
            image_path=Path(self._text(self._images, self._image_offsets, i)),
            mask_path=Path(mask) if mask else None,
            label=int(self._labels[i]),
            category=self._category_names[self._categories[i]],
            defect_type=self._defect_names[self._defects[i]],
            split=self._split_names[self._splits[i]],
        )

    @overload
    def __getitem__(self, index: int) -> ImageRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[ImageRecord]: ...

    def __getitem__(self, index: int | slice) -> ImageRecord | list[ImageRecord]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(len(self)))]
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"record index {index} out of range for {n} records")
        return self._row(i % n)

    def __iter__(self) -> Iterator[ImageRecord]:
        return (self._row(i) for i in range(len(self)))

    @property
    def labels(self) -> np.ndarray:
        """``(n,)`` int64 image labels."""
        return self._labels.astype(np.int64)

    @property
    def categories(self) -> list[str]:
        """Sorted distinct categories."""
        return sorted({self._category_names[c] for c in np.unique(self._categories)})

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the name tuples are a few short strings)."""
        arrays = (self._images, self._image_offsets, self._masks, self._mask_offsets, self._labels,
                  self._categories, self._defects, self._splits)  # fmt: skip
        return sum(a.nbytes for a in arrays)
