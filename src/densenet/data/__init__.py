"""Datasets: finding and verifying files, parsing them, and batching them on a device.

- :mod:`~densenet.data.idx`: the IDX format of MNIST and Fashion-MNIST.
- :mod:`~densenet.data.sources`: dataset specs, the lookup order, checksums and downloads.
- :mod:`~densenet.data.datasets`: :class:`ImageDataset` and :func:`load_dataset`.
- :mod:`~densenet.data.cifar`: the official CIFAR pickles, read with a restricted unpickler.
- :mod:`~densenet.data.images`: class folders, and the stretching preprocessing of the built-in datasets.
- :mod:`~densenet.data.transforms`: resizing once, batch augmentation, normalization.
- :mod:`~densenet.data.augment`: RandAugment and TrivialAugment on uint8 pictures, drawn per picture.
- :mod:`~densenet.data.loader`: the epoch plan every loader shares, and :class:`BatchLoader` (in memory).
- Photo collections: :mod:`~densenet.data.catalogue` (a split as files and labels),
  :mod:`~densenet.data.labels` (label files, ImageNet's val labels;
  :mod:`~densenet.data.csvtable` reads the CSV), :mod:`~densenet.data.photos`
  (per-picture decoding and transforms) and :mod:`~densenet.data.stream` (worker-process loading).
- :mod:`~densenet.data.synthetic`: shapes drawn on the fly, as class folders or as scenes with label and
  box files, for demos and tests.
"""

from densenet.data.datasets import (
    IMAGE_FOLDER,
    ImageDataset,
    dataset_names,
    load_dataset,
    load_image_folder,
    open_image,
    preprocess_image,
)
from densenet.data.idx import IDXError, read_idx, write_idx
from densenet.data.loader import Augment, BatchLoader, shuffle_seed
from densenet.data.sources import (
    DATASETS,
    DatasetSpec,
    default_cache_dir,
    ensure_dataset,
    get_spec,
    locate_dataset,
)
from densenet.data.transforms import (
    convert_channels,
    normalize,
    random_crop,
    random_erasing,
    random_hflip,
    resize_images,
)

__all__ = [
    "DATASETS",
    "IMAGE_FOLDER",
    "Augment",
    "BatchLoader",
    "DatasetSpec",
    "IDXError",
    "ImageDataset",
    "convert_channels",
    "dataset_names",
    "default_cache_dir",
    "ensure_dataset",
    "get_spec",
    "load_dataset",
    "load_image_folder",
    "locate_dataset",
    "normalize",
    "open_image",
    "preprocess_image",
    "random_crop",
    "random_erasing",
    "random_hflip",
    "read_idx",
    "resize_images",
    "shuffle_seed",
    "write_idx",
]
