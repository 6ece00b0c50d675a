"""Datasets: verified fetch, parsing of the original formats, and device-resident splits.

Pipeline per dataset: ``fetch`` (download or copy from a mirror folder, md5 of every file) ->
``prepare`` (parse the original files to one compact ``.pt`` file of uint8 splits) -> ``load``
(a :class:`DataSplits` whose tensors live on the training device).

Why no torchvision: the PyPI torchvision wheel is built against CUDA torch and fails to import
beside the CPU torch build this project pins; we need only readers for four simple formats (IDX,
CIFAR pickles, a zip of JPEGs), which are a few dozen lines each and are tested here.

Faithful to the authors' code (namhoonlee/spp-public): validation = 10% of the official training
set drawn with a fixed seed-0 permutation (independent of any run seed); the official test split
is the test set (Tiny-ImageNet: its official ``val/`` split, whose labels are public);
normalisation statistics come from the whole official training set (global mean/std for
greyscale, per channel for colour); Tiny-ImageNet classes are numbered in ``wnids.txt`` order.

``cifar10-64`` is a STAND-IN for Tiny-ImageNet used by the quick preset only: the CIFAR-10 images
upsampled (bilinear) to 64x64, 10 classes. It exercises the 64x64 code paths (e.g. WRN-16's stride-2
stem) offline; its numbers are not Tiny-ImageNet numbers.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spp.atomic import save_tensors
from spp.data.archives import ChecksumError, load_cifar_pickle, md5sum, open_zip, read_tar

REPO_SUBSETS = Path(__file__).resolve().parents[3] / "data" / "subsets"
FORMAT = "spp-dataset/1"
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
VAL_SEED = 0

_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_TINY_ARCHIVE = "tiny-imagenet-200.zip"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is made of and where its original files come from.

    files: original file name -> published md5. urls: file name -> download URLs, tried in order.
    subset_md5: md5 of the repository-shipped subset files (same names, fewer images), or None.
    raw_from: the dataset whose raw files this one is parsed from (itself, except stand-ins).
    """

    name: str
    reader: str
    num_classes: int
    input_shape: tuple[int, int, int]
    files: dict[str, str]
    urls: dict[str, tuple[str, ...]]
    subset_md5: dict[str, str] | None = None
    raw_from: str = ""
    note: str = ""
    classes: tuple[str, ...] = field(default=())

    @property
    def raw_name(self) -> str:
        return self.raw_from or self.name


def _idx_urls(*bases: str) -> dict[str, tuple[str, ...]]:
    return {f: tuple(b + f for b in bases) for f in _IDX_FILES}


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
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        reader="cifar",
        num_classes=10,
        input_shape=(3, 32, 32),
        files={_CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
        urls={_CIFAR_ARCHIVE: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)},
        subset_md5={_CIFAR_ARCHIVE: "18e3cea5a0810f1342991ebe142ed5e3"},
        classes=_CIFAR_CLASSES,
    ),
    "cifar10-64": DatasetSpec(
        name="cifar10-64",
        reader="cifar-64",
        num_classes=10,
        input_shape=(3, 64, 64),
        files={_CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
        urls={_CIFAR_ARCHIVE: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)},
        subset_md5={_CIFAR_ARCHIVE: "18e3cea5a0810f1342991ebe142ed5e3"},
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
        files={_TINY_ARCHIVE: "90528d7ca1a48142e341f4ef8d21d0de"},
        urls={_TINY_ARCHIVE: ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",)},
        note="Test split = the official val/ split (the official test labels are not public).",
    ),
}

SOURCES = ("official", "subset")


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def expected_md5(name: str, source: str = "official") -> dict[str, str]:
    """File name -> md5 for a dataset's official files or its repository-shipped subset."""
    spec = _spec(name)
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


# --------------------------------------------------------------------------------------- fetch


def _candidates(mirror: Path, spec: DatasetSpec, fname: str) -> list[Path]:
    return [d / fname for d in (mirror / spec.name, mirror / spec.raw_name, mirror)]


def _copy_or_download(sources: list[str | Path], dest: Path, md5: str, what: str) -> None:
    """Fetch into ``dest.part``, verify, rename; try the next source if one fails."""
    part = dest.with_name(dest.name + ".part")
    errors = []
    for src in sources:
        try:
            if isinstance(src, Path):
                shutil.copyfile(src, part)
            else:
                with urllib.request.urlopen(src, timeout=60) as r, open(part, "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)
        except OSError as e:  # URLError is an OSError
            errors.append(f"{src}: {e}")
            part.unlink(missing_ok=True)
            continue
        actual = md5sum(part)
        if actual == md5:
            os.replace(part, dest)
            return
        part.unlink(missing_ok=True)
        errors.append(
            f"{src}: md5 mismatch for {dest.name}: expected {md5}, got {actual} (truncated or "
            "corrupted copy; check the mirror's file against the published md5, or retry the "
            "download)"
        )
    raise ChecksumError(f"could not fetch {what} {dest.name}:\n  " + "\n  ".join(errors))


def fetch(name: str, raw_dir: str | Path, mirror: str | Path | None = None,
          source: str = "official") -> Path:
    """Put a dataset's original files (verified by md5) into ``raw_dir``; return ``raw_dir``.

    mirror: a local folder holding the original file names, directly or in a sub-folder named
      after the dataset (``mirror/mnist/...``); used instead of downloading.
    source: "official" (the published files) or "subset" (the small real subsets shipped in
      ``data/subsets/``, the default mirror for that source).
    A file already in ``raw_dir`` is kept if its md5 matches and is an error otherwise (delete it
    and fetch again): a corrupted file is never silently replaced or used.
    """
    spec = _spec(name)
    sums = expected_md5(name, source)
    if source == "subset" and mirror is None:
        mirror = REPO_SUBSETS
    raw = Path(raw_dir)
    raw.mkdir(parents=True, exist_ok=True)
    for fname, md5 in sums.items():
        dest = raw / fname
        if dest.exists():
            actual = md5sum(dest)
            if actual != md5:
                raise ChecksumError(
                    f"{dest}: md5 mismatch: expected {md5} ({source} {name}), got {actual}. The "
                    "file is corrupted, truncated or from another source: delete it and run the "
                    "fetch again."
                )
            continue
        if mirror is not None:
            found = [p for p in _candidates(Path(mirror), spec, fname) if p.is_file()]
            if not found:
                raise FileNotFoundError(
                    f"{fname} ({source} {name}) not found in mirror folder {mirror} (looked in "
                    + ", ".join(str(p.parent) for p in _candidates(Path(mirror), spec, fname))
                    + ")"
                )
            _copy_or_download(found[:1], dest, md5, f"{source} {name}")
        else:
            if source == "subset":
                raise ValueError("source='subset' needs the repository's data/subsets folder")
            _copy_or_download(list(spec.urls[fname]), dest, md5, f"{source} {name}")
    return raw


def verify(name: str, raw_dir: str | Path) -> str:
    """Check the raw files against the official and subset sums; return the matching source."""
    spec = _spec(name)
    raw = Path(raw_dir)
    actual = {f: md5sum(raw / f) if (raw / f).is_file() else "missing" for f in spec.files}
    for source in SOURCES:
        if source == "subset" and not spec.subset_md5:
            continue
        if actual == expected_md5(name, source):
            return source
    bad = [
        f"{raw / f}: expected {spec.files[f]} (official)"
        + (f" or {spec.subset_md5[f]} (subset)" if spec.subset_md5 else "")
        + f", got {actual[f]}"
        for f in spec.files
        if actual[f] not in (spec.files[f], (spec.subset_md5 or {}).get(f))
    ] or ["the files mix the official and subset versions"]
    raise ChecksumError(
        f"md5 check failed for {name}: " + "; ".join(bad)
        + ". Delete the listed files and run the fetch again."
    )


# ------------------------------------------------------------------------------------- readers


def read_idx(path: str | Path) -> torch.Tensor:
    """An IDX file (optionally gzipped) of unsigned bytes, as a uint8 tensor of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic {data[:4]!r})")
    dtype, ndim = data[2], data[3]
    if dtype != 0x08:
        raise ValueError(f"{path}: IDX element type {dtype:#x}; only unsigned byte (0x08) is used")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise ValueError(f"{path}: IDX header says {dims} = {int(np.prod(dims))} bytes, "
                         f"file holds {len(body)}: truncated; delete it and fetch again")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def _read_idx_dataset(raw: Path):
    xtr = read_idx(raw / "train-images-idx3-ubyte.gz").unsqueeze(1)
    ytr = read_idx(raw / "train-labels-idx1-ubyte.gz").long()
    xte = read_idx(raw / "t10k-images-idx3-ubyte.gz").unsqueeze(1)
    yte = read_idx(raw / "t10k-labels-idx1-ubyte.gz").long()
    return xtr, ytr, xte, yte


def read_cifar_archive(path: str | Path):
    """(x_train, y_train, x_test, y_test, label_names) from a cifar-10-python.tar.gz."""
    names = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    members = read_tar(path, lambda n: n.rsplit("/", 1)[-1] in names)
    by_base = {n.rsplit("/", 1)[-1]: b for n, b in members.items()}
    missing = sorted(names - by_base.keys())
    if missing:
        raise ValueError(f"{path}: not a CIFAR-10 python archive, missing {missing}")

    def batch(key):
        d = load_cifar_pickle(by_base[key])
        x = torch.from_numpy(np.ascontiguousarray(d[b"data"], dtype=np.uint8))
        return x.reshape(-1, 3, 32, 32), torch.tensor(list(d[b"labels"]), dtype=torch.long)

    train = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    meta = load_cifar_pickle(by_base["batches.meta"])
    classes = tuple(n.decode() for n in meta[b"label_names"])
    return (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), xte, yte, classes)


def _decode_image(data: bytes, where: str) -> torch.Tensor:
    from PIL import Image  # only Tiny-ImageNet needs it

    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)  # some images are greyscale
    if arr.shape != (64, 64, 3):
        raise ValueError(f"{where}: image of shape {arr.shape}, expected 64x64 RGB")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def read_tiny_imagenet(path: str | Path):
    """(x_train, y_train, x_test, y_test, wnids) from tiny-imagenet-200.zip, read in memory.

    Classes are numbered in wnids.txt order; test = the official val/ split, labelled by
    val/val_annotations.txt (file name, wnid, box).
    """
    with open_zip(path) as zf:
        names = zf.namelist()
        wn = [n for n in names if n.endswith("wnids.txt") and n.count("/") <= 1]
        if not wn:
            raise ValueError(f"{path}: no wnids.txt; not a tiny-imagenet-200.zip")
        root = wn[0][: -len("wnids.txt")]
        wnids = [w.strip() for w in zf.read(wn[0]).decode().splitlines() if w.strip()]
        label = {w: i for i, w in enumerate(wnids)}
        xs, ys = [], []
        for n in sorted(names):
            parts = n[len(root):].split("/")
            if (n.startswith(root) and len(parts) == 4 and parts[0] == "train"
                    and parts[2] == "images" and parts[3].endswith(".JPEG")):
                if parts[1] not in label:
                    raise ValueError(f"{path}: {n}: class {parts[1]} not in wnids.txt")
                xs.append(_decode_image(zf.read(n), f"{path}:{n}"))
                ys.append(label[parts[1]])
        ann = zf.read(root + "val/val_annotations.txt").decode().splitlines()
        xt, yt = [], []
        for line in sorted(a for a in ann if a.strip()):
            fname, wnid = line.split("\t")[:2]
            n = f"{root}val/images/{fname}"
            xt.append(_decode_image(zf.read(n), f"{path}:{n}"))
            yt.append(label[wnid])
    if not xs or not xt:
        raise ValueError(f"{path}: no train or val images found")
    return (torch.stack(xs), torch.tensor(ys), torch.stack(xt), torch.tensor(yt), tuple(wnids))


def _resize(x: torch.Tensor, size: int, chunk: int = 2000) -> torch.Tensor:
    out = []
    for i in range(0, len(x), chunk):
        xf = torch.nn.functional.interpolate(x[i:i + chunk].float(), size=(size, size),
                                             mode="bilinear", align_corners=False)
        out.append(xf.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def read_raw(name: str, raw_dir: str | Path):
    """Parse a dataset's raw files: (x_train, y_train, x_test, y_test, classes), uint8 NCHW."""
    spec = _spec(name)
    raw = Path(raw_dir)
    if spec.reader == "idx":
        return (*_read_idx_dataset(raw), spec.classes)
    if spec.reader in ("cifar", "cifar-64"):
        xtr, ytr, xte, yte, classes = read_cifar_archive(raw / _CIFAR_ARCHIVE)
        if spec.reader == "cifar-64":
            xtr, xte = _resize(xtr, 64), _resize(xte, 64)
        return xtr, ytr, xte, yte, classes
    return read_tiny_imagenet(raw / _TINY_ARCHIVE)


# ------------------------------------------------------------------------------------- prepare


def val_split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_indices, val_indices) of an n-example training set: a fixed seed-0 10% split."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SEED))
    n_val = int(n * VAL_FRACTION)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std in [0,1] units: global for one channel, per channel for colour."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):  # exact, from each channel's histogram of the 256 levels
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        p = hist / hist.sum()
        mean = (p * levels).sum()
        means.append(mean)
        stds.append(((p * (levels - mean) ** 2).sum()).sqrt())
    return torch.stack(means).float(), torch.stack(stds).float()


def prepare(name: str, raw_dir: str | Path, out_path: str | Path, verify_md5: bool = True) -> None:
    """Parse the raw files into one compact ``.pt`` file (see module doc), written atomically.

    verify_md5: check the raw files against the official or subset sums first (tests that write
    tiny files in the official format turn it off).
    """
    spec = _spec(name)
    raw_spec = _spec(spec.raw_name)
    source = verify(raw_spec.name, raw_dir) if verify_md5 else "unverified"
    xtr, ytr, xte, yte, classes = read_raw(name, raw_dir)
    for what, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if x.shape[1:] != spec.input_shape or len(x) != len(y):
            raise ValueError(f"{raw_dir}: {name} {what} images {tuple(x.shape)} / labels "
                             f"{len(y)}: expected N x {spec.input_shape} and one label each")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
            raise ValueError(f"{raw_dir}: {name} {what} labels outside 0..{spec.num_classes - 1}")
    mean, std = _stats(xtr)
    tr, va = val_split(len(xtr))
    payload = {
        "format": FORMAT,
        "name": name,
        "num_classes": spec.num_classes,
        "input_shape": list(spec.input_shape),
        "classes": list(classes),
        "source": source,
        "note": spec.note,
        "mean": mean,
        "std": std,
        "val_indices": va,
        "x": {"train": xtr[tr].contiguous(), "val": xtr[va].contiguous(), "test": xte.contiguous()},
        "y": {"train": ytr[tr].clone(), "val": ytr[va].clone(), "test": yte.clone()},
    }
    save_tensors(payload, out_path)


def first_examples(batches, max_examples: int | None) -> Iterator:
    """The first ``max_examples`` examples of a batch iterator, exactly (the last batch cut),
    or all of them when None: the one meaning of "scores / Jacobians over N examples"."""
    seen = 0
    for x, y in batches:
        if max_examples is not None and seen + len(x) > max_examples:
            x, y = x[: max_examples - seen], y[: max_examples - seen]
        if len(x) == 0:
            return
        seen += len(x)
        yield x, y
        if max_examples is not None and seen >= max_examples:
            return


# ---------------------------------------------------------------------------------------- load


@dataclass
class DataSplits:
    """uint8 NCHW images and int64 labels per split, on one device, plus normalisation stats."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: torch.Tensor
    std: torch.Tensor
    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    classes: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self):
        c = self.input_shape[0]
        self._shift = (self.mean.float() * 255.0).reshape(1, c, 1, 1).to(self.device)
        self._scale = (1.0 / (self.std.float() * 255.0)).reshape(1, c, 1, 1).to(self.device)

    @property
    def device(self) -> torch.device:
        return self.x["train"].device

    def to(self, device) -> DataSplits:
        device = torch.device(device)
        if device == self.device:
            return self
        return DataSplits(self.name, self.num_classes, self.input_shape, self.mean, self.std,
                          {k: v.to(device) for k, v in self.x.items()},
                          {k: v.to(device) for k, v in self.y.items()}, self.classes, self.note)

    def with_val_in_train(self) -> DataSplits:
        """The same data training on every official training image (OpenLTH): ``train`` gains the
        validation images, which stay in ``val`` too, so a validation error is in-sample."""
        x = {**self.x, "train": torch.cat([self.x["train"], self.x["val"]])}
        y = {**self.y, "train": torch.cat([self.y["train"], self.y["val"]])}
        return DataSplits(self.name, self.num_classes, self.input_shape, self.mean, self.std, x, y,
                          self.classes, self.note)

    def first_per_class(self, split: str, per_class: int) -> DataSplits:
        """The first ``per_class`` images of each class of ``split`` (in split order), as the
        ``train`` split of a new DataSplits: the class-balanced scoring batch of Frankle et al.'s
        code (its ``snipN`` / ``graspN``: N examples per class)."""
        if not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
        y = self.y[split]
        rank = torch.zeros_like(y)
        for c in range(self.num_classes):  # position of each image among its class's images
            where = (y == c).nonzero().flatten()
            rank[where] = torch.arange(len(where), device=y.device)
        keep = (rank < per_class).nonzero().flatten()
        return DataSplits(self.name, self.num_classes, self.input_shape, self.mean, self.std,
                          {**self.x, "train": self.x[split][keep]},
                          {**self.y, "train": y[keep]}, self.classes, self.note)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 (x/255 - mean) / std."""
        return (x.float() - self._shift) * self._scale

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(normalised images, labels) over the whole split, in order; the last may be short."""
        if split not in self.x:
            raise ValueError(f"unknown split {split!r}; allowed: {', '.join(self.x)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x, y = self.x[split], self.y[split]
        for i in range(0, len(x), batch_size):
            yield self.normalize(x[i:i + batch_size]), y[i:i + batch_size]


def load(path: str | Path, device="cpu") -> DataSplits:
    """A prepared dataset file as DataSplits on ``device`` (loaded with weights_only=True)."""
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"{path}: not a prepared dataset file (format {FORMAT!r}); run prepare")
    device = torch.device(device)
    return DataSplits(
        name=d["name"],
        num_classes=int(d["num_classes"]),
        input_shape=tuple(int(v) for v in d["input_shape"]),
        mean=d["mean"],
        std=d["std"],
        x={k: d["x"][k].to(device) for k in SPLITS},
        y={k: d["y"][k].to(device) for k in SPLITS},
        classes=tuple(d.get("classes", ())),
        note=d.get("note", ""),
    )
