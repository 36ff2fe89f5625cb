"""An ImageNet-style image folder on the user's disk: ``PATH/train/<class>/*`` and ``PATH/val/<class>/*``.

As torchvision's ``ImageFolder`` (``datasets/folder.py``: ``find_classes``, ``make_dataset``,
``IMG_EXTENSIONS``): one sub-folder per class, class indices in the sorted order of the class names, the
files of a class in sorted order, images recognised by extension (case-insensitive). The classes are the
training folder's, so a class index means the same in both splits; a validation class the training split
lacks is refused. Only the file names are listed up front; each image is decoded with Pillow when it is
asked for (``decode``), so a million files never load at once, and a ``--limit`` decodes only the images
it takes. A file Pillow cannot read, a truncated one, and one that would decompress to more pixels than
Pillow's bomb limit are each one error line naming the file.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from neuromap.errors import FormatError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = {"train": "train", "test": "val"}
LAYOUT = "PATH/train/<class>/*.JPEG and PATH/val/<class>/*.JPEG, one folder per class (torchvision's ImageFolder)"


@dataclass(frozen=True)
class ImageFolder:
    """The images of one split: their files and labels, and the class names (index = position)."""

    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def scan(path: str, split: str) -> ImageFolder:
    """The files of ``split`` ("train" or "test", the ``val`` folder) of the image folder ``path``.

    >>> scan("~/data/imagenet", "test").classes[:2]  # doctest: +SKIP
    ('n01440764', 'n01443537')
    """
    root = Path(path).expanduser()
    folder = root / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise FormatError(f"imagenet:{path}: no folder {folder} (expected {LAYOUT})", path=str(folder),
                          allowed=LAYOUT)
    train = root / SPLIT_FOLDERS["train"]
    classes = _class_folders(train if train.is_dir() else folder)
    if not classes:
        raise FormatError(f"imagenet:{path}: {train if train.is_dir() else folder} holds no class folders (expected "
                          f"{LAYOUT})", path=str(folder), allowed=LAYOUT)
    index = {name: i for i, name in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for name in _class_folders(folder):
        if name not in index:
            raise FormatError(f"imagenet:{path}: {folder / name} is a class the training folder {train} does not "
                              "have (class indices come from the training folder's sorted class names)",
                              path=str(folder / name))
        found = sorted(Path(dirpath, f) for dirpath, _dirs, names in os.walk(folder / name, followlinks=True)
                       for f in names if f.lower().endswith(IMG_EXTENSIONS))
        files += found
        labels += [index[name]] * len(found)
    if not files:
        raise FormatError(f"imagenet:{path}: no images in {folder} (expected {LAYOUT}; images end in "
                          f"{', '.join(IMG_EXTENSIONS)})", path=str(folder), allowed=LAYOUT)
    return ImageFolder(tuple(classes), tuple(files), np.asarray(labels, dtype=np.int64))


def decode(file: Path) -> Image.Image:
    """The image in ``file`` as RGB, decoded completely (so a truncated file fails here, named)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                return image.convert("RGB")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise FormatError(f"{file}: refused: {exc}", path=str(file)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"{file}: not a readable image, truncated or corrupt ({reason})", path=str(file)) from None
