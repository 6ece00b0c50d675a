"""What each dataset is made of and where its original files come from: names, shapes, class
counts, files and their published md5 sums, download URLs, the forms a mirror may hold them in.

Torch- and numpy-free, because the Snakefile checks a config's dataset names against these while
it parses (a controller may have Snakemake alone); reading the files is ``spp.data.datasets``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-py"
TINY_ARCHIVE = "tiny-imagenet-200.zip"
TINY_FOLDER = "tiny-imagenet-200"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is made of and where its original files come from.

    files: original file name -> published md5. urls: file name -> download URLs, tried in order.
    subset_md5: md5 of the repository-shipped subset files (same names, fewer images), or None.
    unpacked, subset_unpacked: original file name -> {path of an extracted file: md5} for the
      files torchvision (or unzip) leaves in its place; a path ending in "/" is a folder without
      published sums (checked by counting, see ``_check_tree``).
    torchvision_dir: where a torchvision root keeps the files, relative to it.
    raw_from: the dataset whose raw files this one is parsed from (itself, except stand-ins).
    """

    name: str
    reader: str
    num_classes: int
    input_shape: tuple[int, int, int]
    files: dict[str, str]
    urls: dict[str, tuple[str, ...]]
    subset_md5: dict[str, str] | None = None
    unpacked: dict[str, dict[str, str]] = field(default_factory=dict)
    subset_unpacked: dict[str, dict[str, str]] | None = None
    torchvision_dir: str = ""
    raw_from: str = ""
    note: str = ""
    classes: tuple[str, ...] = field(default=())

    @property
    def raw_name(self) -> str:
        return self.raw_from or self.name


def _idx_urls(*bases: str) -> dict[str, tuple[str, ...]]:
    return {f: tuple(b + f for b in bases) for f in IDX_FILES}


def _gunzipped(*md5s: str) -> dict[str, dict[str, str]]:
    """The decompressed IDX file torchvision leaves beside each .gz (md5s in IDX_FILES order)."""
    return {f: {f[:-3]: m} for f, m in zip(IDX_FILES, md5s, strict=True)}


def _cifar_members(*md5s: str) -> dict[str, dict[str, str]]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return {CIFAR_ARCHIVE: {f"{CIFAR_FOLDER}/{n}": m for n, m in zip(names, md5s, strict=True)}}


# Decompressed IDX sums: computed from the md5-verified official and shipped .gz files.
# CIFAR-10 member sums: torchvision's published ones (official), the shipped archive's (subset).
_CIFAR_UNPACKED = _cifar_members(
    "c99cafc152244af753f735de768cd75f", "d4bba439e000b95fd0a9bffe97cbabec",
    "54ebc095f3ab1f0389bbae665268c751", "634d18415352ddfa80567beed471001a",
    "482c414d41f54cd18b22e5b47cb7c3cb", "40351d587109b95175f43aff81a1287e",
    "5ff9c542aee3614f3951f8cda6e48888")
_CIFAR_SUBSET_UNPACKED = _cifar_members(
    "25f4f5f0ed734cfbcb48a240dffc1a34", "8fd92cdd75c942422bfb48fa13596e26",
    "4c038a135aad9d356ba9417a24d1a4e9", "3e4ff385f97e2ae8da1a2b8b4953717a",
    "72a3cf97075c0d53a80f44072de92ded", "b9b010c8b56a7c8b53d93d66ff34aba5",
    "51dbffc290f654e2d1995039de649940")


_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        reader="idx",
        num_classes=10,
        input_shape=(1, 28, 28),
        files={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        # yann.lecun.com often refuses downloads; the S3 copy is the one PyTorch's docs use.
        urls=_idx_urls("https://yann.lecun.com/exdb/mnist/",
                       "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        subset_md5={
            "train-images-idx3-ubyte.gz": "b4074e0f35340fdfd252667db6ab88d1",
            "train-labels-idx1-ubyte.gz": "e51227a57bab6e407b1b8f807b16e9b4",
            "t10k-images-idx3-ubyte.gz": "2da0559de72150b986eed633e554d7d0",
            "t10k-labels-idx1-ubyte.gz": "22c230ce120978c69732b83111590475",
        },
        unpacked=_gunzipped("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                            "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        subset_unpacked=_gunzipped(
            "f94e2e999822064a8ed2e24407d05db2", "46b552f6dafa7fee168160cf6eef9fd4",
            "167effcbc3aff23413f01a5e36e7f73f", "a3e2c6f416e329269361d38823f31c75"),
        torchvision_dir="MNIST/raw",
        classes=tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        reader="idx",
        num_classes=10,
        input_shape=(1, 28, 28),
        files={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        urls=_idx_urls("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        subset_md5={
            "train-images-idx3-ubyte.gz": "d6a613f2a281fe2a4f87d2e4a0486eca",
            "train-labels-idx1-ubyte.gz": "640cdee48414f0fc97c5288c4ef914aa",
            "t10k-images-idx3-ubyte.gz": "dd676e0e40c154d700c28e7452675ba9",
            "t10k-labels-idx1-ubyte.gz": "78fb9f2621c28abc3d1d463464f2c162",
        },
        unpacked=_gunzipped("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                            "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
        subset_unpacked=_gunzipped(
            "9a0008914e4276532f9b952fd32c5c7f", "1a9c636a38f22991c271a08277eb9628",
            "32d86cdeacf806dae50f0ea01d4f4655", "2a34ae02830f911324fd3bb64c757946"),
        torchvision_dir="FashionMNIST/raw",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        reader="cifar",
        num_classes=10,
        input_shape=(3, 32, 32),
        files={CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
        urls={CIFAR_ARCHIVE: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)},
        subset_md5={CIFAR_ARCHIVE: "18e3cea5a0810f1342991ebe142ed5e3"},
        unpacked=_CIFAR_UNPACKED,
        subset_unpacked=_CIFAR_SUBSET_UNPACKED,
        classes=_CIFAR_CLASSES,
    ),
    "cifar10-64": DatasetSpec(
        name="cifar10-64",
        reader="cifar-64",
        num_classes=10,
        input_shape=(3, 64, 64),
        files={CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
        urls={CIFAR_ARCHIVE: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)},
        subset_md5={CIFAR_ARCHIVE: "18e3cea5a0810f1342991ebe142ed5e3"},
        unpacked=_CIFAR_UNPACKED,
        subset_unpacked=_CIFAR_SUBSET_UNPACKED,
        raw_from="cifar10",
        note="STAND-IN for Tiny-ImageNet (quick preset): CIFAR-10 upsampled to 64x64, 10 classes; "
        "not Tiny-ImageNet results.",
        classes=_CIFAR_CLASSES,
    ),
    "tiny-imagenet": DatasetSpec(
        name="tiny-imagenet",
        reader="tiny-imagenet",
        num_classes=200,
        input_shape=(3, 64, 64),
        files={TINY_ARCHIVE: "90528d7ca1a48142e341f4ef8d21d0de"},
        urls={TINY_ARCHIVE: ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",)},
        unpacked={TINY_ARCHIVE: {f"{TINY_FOLDER}/": ""}},
        note="Test split = the official val/ split (the official test labels are not public).",
    ),
}

SOURCES = ("official", "subset")


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def expected_md5(name: str, source: str = "official") -> dict[str, str]:
    """File name -> md5 for a dataset's official files or its repository-shipped subset."""
    spec = dataset_spec(name)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
    if source == "official":
        return dict(spec.files)
    if not spec.subset_md5:
        raise ValueError(
            f"dataset {name!r} has no repository-shipped subset; allowed with source='subset': "
            + ", ".join(n for n, s in DATASETS.items() if s.subset_md5)
        )
    return dict(spec.subset_md5)
