"""SamplePairs as a torch DataLoader in an ``Order`` (``epoch_order``: resumable, rank-sharded)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from earthport.data.samples import SHUFFLED, Order, SamplePairs


class _PairsDataset(Dataset):
    def __init__(self, pairs: SamplePairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.pairs[index]
        return torch.from_numpy(inputs), torch.from_numpy(targets)


class EpochSampler(Sampler[int]):
    """Yields ``order.indices(n)``: the same order the MindSpore adapter uses."""

    def __init__(self, n: int, order: Order):
        self.order = order.indices(n)

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.order)

    def __len__(self) -> int:
        return len(self.order)


def torch_loader(pairs: SamplePairs, batch_size: int, order: Order = SHUFFLED, num_workers: int = 0) -> DataLoader:
    """Batches of (inputs [batch, in_channel, lat, lon], targets [batch, steps, out_channel, lat, lon]) in
    ``order``."""
    sampler = EpochSampler(len(pairs), order)
    return DataLoader(_PairsDataset(pairs), batch_size=batch_size, sampler=sampler, num_workers=num_workers)
