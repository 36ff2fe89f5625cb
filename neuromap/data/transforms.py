"""Augmentation and normalisation of images, as the papers' training recipes use them.

* **Normalisation** (training and evaluation): per channel, ``(x / 255 - mean) / std``.
  CIFAR-10: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010), the values of OTTT's
  ``train_cifar.py`` (``transforms.Normalize`` in ``transform_train`` and ``transform_test``; OTTT is the
  online-training baseline STOP is measured against). CIFAR-100: its own training set's statistics, mean
  (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762). ImageNet: mean (0.485, 0.456, 0.406), std
  (0.229, 0.224, 0.225), the values torchvision's ImageNet models are trained with.
* **CIFAR training augmentation**: pad 4 pixels of zeros on every side, crop a random 32 x 32 window, flip
  left-right with probability 1/2 (torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``).
* **ImageNet**: training takes a random crop of 8 % to 100 % of the image's area and aspect ratio 3/4 to 4/3
  (log-uniform), resized to the model's (H, W), flipped with probability 1/2 (torchvision's
  ``RandomResizedCrop`` and its ``get_params``, ten tries then the centre); evaluation resizes the shorter
  side to 256/224 of the model's size (256 for 224 x 224) and takes the centre (H, W) crop.

Evaluation never augments. Every random draw comes from the ``numpy.random.Generator`` passed in, so a
seed gives the same images on every machine and in every DataLoader worker.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_PAD = 4
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_TRIES = 10
EVAL_RESIZE = 256 / 224          # ImageNet's evaluation: resize to 256, centre crop 224


def normalize(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Bytes (..., C, H, W) in 0..255 as float32 ``(x / 255 - mean) / std``, per channel.

    >>> normalize(np.full((3, 1, 1), 255, np.uint8), IMAGENET_MEAN, IMAGENET_STD)[:, 0, 0].round(3)
    array([2.249, 2.429, 2.64 ], dtype=float32)
    """
    shape = (len(mean), 1, 1)
    m = np.asarray(mean, np.float32).reshape(shape)
    s = np.asarray(std, np.float32).reshape(shape)
    return ((images.astype(np.float32) / np.float32(255) - m) / s).astype(np.float32)


def normalised_range(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[float, float]:
    """The smallest and largest value ``normalize`` gives any byte, over the channels: what a network
    compiled for such images must take (``neuromap.compile(..., input_range=...)``).

    >>> tuple(round(v, 3) for v in normalised_range(CIFAR10_MEAN, CIFAR10_STD))
    (-2.429, 2.754)
    """
    return (min(-m / s for m, s in zip(mean, std)), max((1 - m) / s for m, s in zip(mean, std)))


def cifar_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (C, H, W) byte image padded by 4 zeros on each side, cropped back to (H, W) at a random offset,
    flipped left-right with probability 1/2."""
    _, height, width = image.shape
    padded = np.pad(image, ((0, 0), (CIFAR_PAD, CIFAR_PAD), (CIFAR_PAD, CIFAR_PAD)))
    top, left = (int(v) for v in rng.integers(0, 2 * CIFAR_PAD + 1, size=2))
    crop = padded[:, top:top + height, left:left + width]
    return np.ascontiguousarray(crop[:, :, ::-1] if rng.random() < 0.5 else crop)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def resized_crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height) of a random crop as torchvision's ``RandomResizedCrop.get_params``
    draws it: area 8-100 %, aspect ratio log-uniform in [3/4, 4/3], ten tries, then the central crop."""
    area = width * height
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(CROP_TRIES):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    ratio = width / height
    if ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        w, h = round(height * CROP_RATIO[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def imagenet_train(image: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An RGB image as (3, H, W) bytes: a random resized crop to ``size`` = (H, W), flipped with probability 1/2."""
    left, top, w, h = resized_crop_box(image.width, image.height, rng)
    crop = image.resize((size[1], size[0]), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _pixels(crop)


def imagenet_eval(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """An RGB image as (3, H, W) bytes: the shorter side resized to 256/224 of max(H, W), the centre
    ``size`` = (H, W) cropped."""
    short = round(EVAL_RESIZE * max(size))
    scale = short / min(image.width, image.height)
    width, height = max(size[1], round(image.width * scale)), max(size[0], round(image.height * scale))
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = round((width - size[1]) / 2), round((height - size[0]) / 2)
    return _pixels(resized.crop((left, top, left + size[1], top + size[0])))
