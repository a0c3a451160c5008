"""The registered datasets, as data: files, checksums, addresses, classes and statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from densenet.errors import ConfigError

__all__ = ["CifarLayout", "DatasetSpec", "DATASETS", "get_spec"]


@dataclass(frozen=True)
class CifarLayout:
    """How the official CIFAR "python version" archive is laid out."""

    archive: str  # the .tar.gz as downloaded
    extracted_dir: str  # the folder inside it
    members: Mapping[str, str]  # file inside extracted_dir -> md5 (torchvision's published values)
    splits: Mapping[str, tuple[str, ...]]  # "train"/"test" -> batch files
    meta: str  # the file holding the class names
    names_key: str  # key of the class names in ``meta``
    labels_key: str  # key of the labels in each batch


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the code needs to know about one dataset, beyond its pixels."""

    name: str  # registry key and folder name under $DENSENET_DATA and the cache
    title: str  # human-readable name
    files: Mapping[str, str]  # role (train_images, ..., or archive) -> file name as distributed
    mirrors: tuple[str, ...]  # base URLs tried in order; a file's URL is mirror + file name
    md5: Mapping[str, str]  # file name -> md5 of the file as downloaded
    content_md5: Mapping[str, str]  # file name -> md5 of its decompressed content (IDX only)
    classes: tuple[str, ...]  # class names, index = label
    in_channels: int  # 1 (grayscale) or 3 (RGB)
    image_size: int  # native height = width
    mean: tuple[float, ...]  # per-channel mean of the train set, pixels scaled to [0, 1]
    std: tuple[float, ...]  # per-channel std of the train set, pixels scaled to [0, 1]
    apt_package: str | None = None  # Debian package installing into /usr/share/datasets/<name>
    cifar: CifarLayout | None = field(default=None)  # set for the CIFAR pickle format, None for IDX

    @property
    def num_classes(self) -> int:
        return len(self.classes)


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files=_IDX_FILES,
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    content_md5={
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    in_channels=1,
    image_size=28,
    # Computed from the 60,000 training images (0.28604, 0.35302).
    mean=(0.2860,),
    std=(0.3530,),
    apt_package="dataset-fashion-mnist",
)

MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    files=_IDX_FILES,
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    content_md5={
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    classes=tuple(str(digit) for digit in range(10)),
    in_channels=1,
    image_size=28,
    # Computed from the 60,000 training images (0.13066, 0.30811).
    mean=(0.1307,),
    std=(0.3081,),
)

def _cifar(name: str, title: str, archive_md5: str, classes: tuple[str, ...], mean: tuple[float, ...],
           std: tuple[float, ...], layout: dict) -> DatasetSpec:
    """A CIFAR spec: one "python version" archive from the Toronto mirror, 32x32 RGB."""
    archive = f"{name}-python.tar.gz"
    return DatasetSpec(name=name, title=title, files={"archive": archive}, mirrors=("https://www.cs.toronto.edu/~kriz/",),
                       md5={archive: archive_md5}, content_md5={}, classes=classes, in_channels=3, image_size=32,
                       mean=mean, std=std, cifar=CifarLayout(archive=archive, **layout))


CIFAR10 = _cifar(
    "cifar-10", "CIFAR-10", "c58f30108f718f92721af3b95e74349a",
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    layout=dict(extracted_dir="cifar-10-batches-py", meta="batches.meta", names_key="label_names", labels_key="labels",
                splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                members={"data_batch_1": "c99cafc152244af753f735de768cd75f",
                         "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                         "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                         "data_batch_4": "634d18415352ddfa80567beed471001a",
                         "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                         "test_batch": "40351d587109b95175f43aff81a1287e",
                         "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}),
)

_CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()

CIFAR100 = _cifar(
    "cifar-100", "CIFAR-100", "eb9058c3a382ffc7106e4002c42a8d85", tuple(_CIFAR100_CLASSES),
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    layout=dict(extracted_dir="cifar-100-python", meta="meta", names_key="fine_label_names", labels_key="fine_labels",
                splits={"train": ("train",), "test": ("test",)},
                members={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                         "meta": "7973b15100ade9c7d40fb424638fde48"}),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FASHION_MNIST, MNIST, CIFAR10, CIFAR100)}


def get_spec(name: str) -> DatasetSpec:
    """The registered spec called ``name``.

    Raises:
        ConfigError: no dataset has that name.
    """
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {known}, or image-folder and csv for your "
                          "own pictures") from None
