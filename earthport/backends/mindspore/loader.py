"""SamplePairs as a ``mindspore.dataset.GeneratorDataset`` in the order ``epoch_order`` gives."""

from __future__ import annotations

import numpy as np

from earthport.data.samples import SHUFFLED, Order, SamplePairs
from earthport.optional import import_mindspore


class _OrderedSource:
    """Random-access source for GeneratorDataset: item i is ``pairs[order[i]]``."""

    def __init__(self, pairs: SamplePairs, order: np.ndarray):
        self.pairs, self.order = pairs, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs[int(self.order[index])]


def mindspore_dataset(pairs: SamplePairs, batch_size: int, order: Order = SHUFFLED):
    """A batched GeneratorDataset with columns ``inputs`` [batch, in_channel, lat, lon] and ``targets``
    [batch, steps, out_channel, lat, lon] in ``order``; sharding and shuffling are ours (``epoch_order``), not
    MindSpore's, so the batches equal the torch loader's."""
    ms = import_mindspore()
    dataset = ms.dataset.GeneratorDataset(
        _OrderedSource(pairs, order.indices(len(pairs))), column_names=["inputs", "targets"], shuffle=False,
        num_parallel_workers=1,
    )
    return dataset.batch(batch_size, drop_remainder=False)
