"""The data sets on the user's disk as torch ``Dataset`` pairs for training: augmented on the fly, lazily.

``neuromap.data.splits(spec)`` builds them. Each item is ``(x, label)``: ``x`` a float32 tensor, (3, H, W)
normalised images or (T, *frame) event frames. The training set of an image data set augments every item
anew (``neuromap.data.transforms``); its random draws come from ``(seed, epoch, index)``, so an item is
the same in any DataLoader worker and on any machine, and ``set_epoch`` gives every epoch new draws. Test
sets never augment. Folder images and event recordings are read from disk when an item is asked for.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from neuromap.data import transforms
from neuromap.data.events import bin_events, check_events
from neuromap.data.images import ImageFolder, decode
from neuromap.data.tonic_sets import Listing


class _Augmented(Dataset[tuple[torch.Tensor, int]]):
    """Shared by the image sets: the epoch and seed their augmentation draws from."""

    def __init__(self, labels: np.ndarray, augment: bool, seed: int) -> None:
        self.labels, self.augment, self.seed, self.epoch = labels, augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentation of ``epoch`` (each epoch sees other crops and flips)."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __len__(self) -> int:
        return len(self.labels)


class ArrayImages(_Augmented):
    """Byte images held in memory (CIFAR), normalised; with ``augment``, CIFAR's random crop and flip."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], *,
                 augment: bool, seed: int = 0) -> None:
        super().__init__(labels, augment, seed)
        self.images, self.mean, self.std = images, mean, std

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.augment:
            image = transforms.cifar_augment(image, self._rng(index))
        return torch.from_numpy(transforms.normalize(image, self.mean, self.std)), int(self.labels[index])


class FolderImages(_Augmented):
    """An image folder's files, decoded when asked for: ImageNet's training or evaluation transform to
    ``size`` = (H, W), normalised with ImageNet's statistics."""

    def __init__(self, folder: ImageFolder, size: tuple[int, int], *, augment: bool, seed: int = 0) -> None:
        super().__init__(folder.labels, augment, seed)
        self.folder, self.size = folder, size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = decode(self.folder.files[index])
        pixels = (transforms.imagenet_train(image, self.size, self._rng(index)) if self.augment
                  else transforms.imagenet_eval(image, self.size))
        x = transforms.normalize(pixels, transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)
        return torch.from_numpy(x), int(self.labels[index])


class EventFrames(Dataset[tuple[torch.Tensor, int]]):
    """Event recordings read by tonic when asked for, binned to ``steps`` frames (``neuromap.data.events``)."""

    def __init__(self, listing: Listing, steps: int) -> None:
        self.listing, self.steps = listing, steps

    def __len__(self) -> int:
        return len(self.listing.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        events, label = self.listing.read(index)
        check_events(events, self.listing.sensor_size, self.listing.source(index), index)
        return torch.from_numpy(bin_events(events, self.listing.sensor_size, self.steps)), label
