"""SamplePairs as a torch DataLoader whose order comes from ``epoch_order`` (resumable, rank-sharded)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from earthport.data.samples import SamplePairs, epoch_order


class _PairsDataset(Dataset):
    def __init__(self, pairs: SamplePairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.pairs[index]
        return torch.from_numpy(inputs), torch.from_numpy(targets)


class EpochSampler(Sampler[int]):
    """Yields ``epoch_order(...)[skip:]``: the same order the MindSpore adapter uses."""

    def __init__(self, n: int, epoch: int, seed: int, shuffle: bool, rank: int, world_size: int, skip: int = 0):
        self.order = epoch_order(n, epoch, seed, shuffle, rank, world_size)[skip:]

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.order)

    def __len__(self) -> int:
        return len(self.order)


def torch_loader(
    pairs: SamplePairs,
    batch_size: int,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
    skip: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """Batches of (inputs [batch, in_channel, lat, lon], targets [batch, steps, out_channel, lat, lon]).

    ``skip`` drops the first samples of this epoch's order (a resumed run continues mid-epoch).
    """
    sampler = EpochSampler(len(pairs), epoch, seed, shuffle, rank, world_size, skip)
    return DataLoader(_PairsDataset(pairs), batch_size=batch_size, sampler=sampler, num_workers=num_workers)
