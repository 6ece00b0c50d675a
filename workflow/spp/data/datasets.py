"""Datasets: verified fetch, parsing of the original formats, and device-resident splits.

Pipeline per dataset: ``fetch`` (download or copy from a mirror folder, md5 of every file) ->
``prepare`` (parse the original files to one compact ``.pt`` file of uint8 splits) -> ``load``
(a :class:`DataSplits` whose tensors live on the training device).

Why no torchvision: its loaders hand a training step one image at a time through a DataLoader
(CPU workers, PIL transforms); here each split is one uint8 tensor on the training device, so the
original code's augmentation runs per image as batched tensor ops in the step, and the split is
the original code's. Its dataset folders are read as mirrors (``fetch``), and
tests/test_torchvision_layouts.py checks its loaders give the same pixels where it imports.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spp.atomic import load_tensors, save_tensors
from spp.data.archives import ChecksumError, load_cifar_pickle, md5sum, open_zip, read_tar
from spp.data.specs import (
    CIFAR_ARCHIVE,
    CIFAR_FOLDER,
    DATASETS,  # noqa: F401  (the data API; defined torch-free in spp.data.specs)
    SOURCES,
    TINY_ARCHIVE,
    TINY_FOLDER,
    DatasetSpec,
    dataset_spec,
    expected_md5,
)

REPO_SUBSETS = Path(__file__).resolve().parents[3] / "data" / "subsets"
FORMAT = "spp-dataset/1"
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
VAL_SEED = 0

# What a complete extracted tiny-imagenet-200/ holds: no md5 is published for its files, so these
# counts are what fetch can check (a partial unzip is the usual fault).
TINY_IMAGENET_COUNTS = {"classes": 200, "train_per_class": 500, "val": 10000}


# --------------------------------------------------------------------------------------- fetch


def _forms(spec: DatasetSpec, fname: str, source: str) -> list[dict[str, str]]:
    """How one original file may be present, preferred first: itself, or what extracting it
    leaves (path -> md5; a folder path ends in "/" and has no sum)."""
    table = spec.unpacked if source == "official" else (spec.subset_unpacked or {})
    return [{fname: expected_md5(spec.name, source)[fname]}] + (
        [table[fname]] if fname in table else [])


def _has(folder: Path, path: str) -> bool:
    return (folder / path).is_dir() if path.endswith("/") else (folder / path).is_file()


def _complete(folder: Path, form: dict[str, str]) -> bool:
    return all(_has(folder, p) for p in form)


def mirror_folders(mirror: str | Path, name: str) -> list[Path]:
    """Where a mirror may hold a dataset, in the order searched: a sub-folder named after it (or
    after the dataset it is made from), the mirror itself, and torchvision's folder for it."""
    spec, m = dataset_spec(name), Path(mirror)
    dirs = [m / spec.name, m / spec.raw_name, m]
    if spec.torchvision_dir:
        dirs.append(m / spec.torchvision_dir)
    return list(dict.fromkeys(dirs))


def _check_tree(folder: Path) -> str:
    """Count an extracted tiny-imagenet-200/ against the official zip (no sums to check)."""
    want = TINY_IMAGENET_COUNTS
    wn = folder / "wnids.txt"
    wnids = [w.strip() for w in wn.read_text().splitlines() if w.strip()] if wn.is_file() else []
    problems = []
    if len(wnids) != want["classes"]:
        problems.append(f"wnids.txt lists {len(wnids)} classes, not {want['classes']}")
    short = [f"{w} ({n})" for w in wnids
             if (n := len(list((folder / "train" / w / "images").glob("*.JPEG"))))
             != want["train_per_class"]]
    if short:
        problems.append(f"{len(short)} classes without {want['train_per_class']} training images "
                        f"in train/<wnid>/images: {', '.join(short[:5])}")
    ann = folder / "val" / "val_annotations.txt"
    lines = [a for a in ann.read_text().splitlines() if a.strip()] if ann.is_file() else []
    missing = [a.split("\t")[0] for a in lines
               if not (folder / "val" / "images" / a.split("\t")[0]).is_file()]
    if len(lines) != want["val"] or missing:
        problems.append(f"val/val_annotations.txt lists {len(lines)} images, not {want['val']}"
                        + (f", {len(missing)} of them missing from val/images" if missing else ""))
    if problems:
        raise ChecksumError(
            f"{folder}: not a complete tiny-imagenet-200 folder: " + "; ".join(problems)
            + ". Extract tiny-imagenet-200.zip again (or put the zip itself in the mirror).")
    return (f"{folder.name}/: counted {len(wnids)} classes x {want['train_per_class']} training "
            f"and {len(lines)} annotated val images (no md5 is published for the extracted files)")


def _check_present(folder: Path, form: dict[str, str], what: str) -> list[str]:
    """Check files already in ``folder``; what was checked, or an error naming the remedy."""
    done = []
    for path, md5 in form.items():
        if path.endswith("/"):
            done.append(_check_tree(folder / path))
            continue
        actual = md5sum(folder / path)
        if actual != md5:
            raise ChecksumError(
                f"{folder / path}: md5 mismatch: expected {md5} ({what}), got {actual}. The "
                "file is corrupted, truncated or from another source: delete it and run the "
                "fetch again."
            )
        done.append(f"{path}: md5 {md5} ({what})")
    return done


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


def _copy_form(src: Path, form: dict[str, str], raw: Path, what: str) -> list[str]:
    done = []
    for path, md5 in form.items():
        dest = raw / path.rstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith("/"):  # counted before the copy, so a partial folder is not copied
            _check_tree(src / path)
            part = dest.with_name(dest.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            shutil.copytree(src / path, part)
            done.append(_check_tree(part).replace(part.name, dest.name, 1))
            os.replace(part, dest)
        else:
            _copy_or_download([src / path], dest, md5, what)
            done.append(f"{path}: md5 {md5} ({what})")
    return done


def _from_mirror(mirror: Path, spec: DatasetSpec, fname: str, source: str, raw: Path) -> None:
    forms = _forms(spec, fname, source)
    what = f"{source} {spec.name}"
    dirs = mirror_folders(mirror, spec.name)
    partial = []
    for d in dirs:
        for form in forms:
            if _complete(d, form):
                for line in _copy_form(d, form, raw, what):
                    print(f"fetch {spec.name}: {line}, from {d}", flush=True)
                return
            have = [p for p in form if _has(d, p)]
            if have:
                partial.append(f"{d} holds {', '.join(have)} but not "
                               + ", ".join(p for p in form if p not in have))
    names = " or ".join(", ".join(f) for f in forms)
    raise FileNotFoundError(
        f"{fname} ({what}) not found in mirror folder {mirror}: looked for {names} in "
        + ", ".join(str(d) for d in dirs)
        + (f" ({'; '.join(partial)})" if partial else "")
        + ". The mirror is a folder of the original files, or a torchvision dataset root "
        "(MNIST/raw, FashionMNIST/raw, cifar-10-batches-py, tiny-imagenet-200)."
    )


def fetch(name: str, raw_dir: str | Path, mirror: str | Path | None = None,
          source: str = "official") -> Path:
    """Put a dataset's original files (verified by md5) into ``raw_dir``; return ``raw_dir``.

    mirror: a local folder used instead of downloading, searched per dataset
      (``mirror_folders``): the original files directly or in a sub-folder named after the
      dataset, or a torchvision dataset root as it is (``MNIST/raw``, ``FashionMNIST/raw``,
      ``cifar-10-batches-py/``, ``tiny-imagenet-200/``). An original file is preferred to what
      extracting it left; extracted files are checked against their own md5s (Tiny-ImageNet's,
      which have none, by counting).
    source: "official" (the published files) or "subset" (the small real subsets shipped in
      ``data/subsets/``, the default mirror for that source).
    A file already in ``raw_dir`` is kept if its md5 matches and is an error otherwise (delete it
    and fetch again): a corrupted file is never silently replaced or used.
    """
    spec = dataset_spec(name)
    sums = expected_md5(name, source)
    if source == "subset" and mirror is None:
        mirror = REPO_SUBSETS
    raw = Path(raw_dir)
    raw.mkdir(parents=True, exist_ok=True)
    for fname in sums:
        here = next((f for f in _forms(spec, fname, source) if _complete(raw, f)), None)
        if here is not None:
            _check_present(raw, here, f"{source} {name}")
        elif mirror is not None:
            _from_mirror(Path(mirror), spec, fname, source, raw)
        else:
            if source == "subset":
                raise ValueError("source='subset' needs the repository's data/subsets folder")
            _copy_or_download(list(spec.urls[fname]), raw / fname, sums[fname], f"{source} {name}")
    return raw


def verification(name: str, raw_dir: str | Path) -> tuple[str, str]:
    """(source, what was checked) of the raw files: the source whose sums they all match."""
    spec = dataset_spec(name)
    raw = Path(raw_dir)
    sources = [s for s in SOURCES if s == "official" or spec.subset_md5]
    actual, trees = {}, []
    for fname in spec.files:
        form = next((f for f in _forms(spec, fname, "official") if _complete(raw, f)), None)
        for path in form or {fname: ""}:
            if path.endswith("/"):
                trees.append(_check_tree(raw / path))
            else:
                actual[path] = md5sum(raw / path) if (raw / path).is_file() else "missing"
    want = {s: {p: m for f in spec.files for form in _forms(spec, f, s) for p, m in form.items()}
            for s in sources}
    for source in sources:
        if all(want[source].get(p) == a for p, a in actual.items()):
            checked = "; ".join([f"md5 of {', '.join(actual)}", *trees] if actual else trees)
            return source, f"{source}: {checked}"
    bad = [
        f"{raw / p}: expected {want['official'].get(p)} (official)"
        + (f" or {want['subset'].get(p)} (subset)" if "subset" in want else "")
        + f", got {a}"
        for p, a in actual.items()
        if a not in (want[s].get(p) for s in sources)
    ] or ["the files mix the official and subset versions"]
    raise ChecksumError(
        f"md5 check failed for {name}: " + "; ".join(bad)
        + ". Delete the listed files and run the fetch again."
    )


def verify(name: str, raw_dir: str | Path) -> str:
    """Check the raw files against the official and subset sums; return the matching source."""
    return verification(name, raw_dir)[0]


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
    def read(fname):  # the .gz, or the decompressed file a torchvision root keeps
        return read_idx(raw / fname if (raw / fname).is_file() else raw / fname[:-3])

    xtr = read("train-images-idx3-ubyte.gz").unsqueeze(1)
    ytr = read("train-labels-idx1-ubyte.gz").long()
    xte = read("t10k-images-idx3-ubyte.gz").unsqueeze(1)
    yte = read("t10k-labels-idx1-ubyte.gz").long()
    return xtr, ytr, xte, yte


_CIFAR_NAMES = frozenset({f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"})


def read_cifar_archive(path: str | Path):
    """(x_train, y_train, x_test, y_test, label_names) from a cifar-10-python.tar.gz."""
    members = read_tar(path, lambda n: n.rsplit("/", 1)[-1] in _CIFAR_NAMES)
    return _parse_cifar({n.rsplit("/", 1)[-1]: b for n, b in members.items()}, path)


def read_cifar_folder(folder: str | Path):
    """The same from an extracted cifar-10-batches-py/ (torchvision's folder)."""
    folder = Path(folder)
    return _parse_cifar({n: (folder / n).read_bytes() for n in _CIFAR_NAMES
                         if (folder / n).is_file()}, folder)


def _parse_cifar(by_base: dict[str, bytes], where):
    missing = sorted(_CIFAR_NAMES - by_base.keys())
    if missing:
        raise ValueError(f"{where}: not CIFAR-10's python version, missing {missing}")

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
    """(x_train, y_train, x_test, y_test, wnids) from tiny-imagenet-200.zip, read in memory, or
    from the folder it extracts to (the same images in the same order).

    Classes are numbered in wnids.txt order; test = the official val/ split, labelled by
    val/val_annotations.txt (file name, wnid, box).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "wnids.txt").is_file():
            raise ValueError(f"{path}: no wnids.txt; not a tiny-imagenet-200 folder")
        names = [q.relative_to(path).as_posix() for q in path.rglob("*") if q.is_file()]
        return _parse_tiny(names, "", lambda n: (path / n).read_bytes(), path)
    with open_zip(path) as zf:
        names = zf.namelist()
        wn = [n for n in names if n.endswith("wnids.txt") and n.count("/") <= 1]
        if not wn:
            raise ValueError(f"{path}: no wnids.txt; not a tiny-imagenet-200.zip")
        return _parse_tiny(names, wn[0][: -len("wnids.txt")], zf.read, path)


def _parse_tiny(names: list[str], root: str, read, path: Path):
    wnids = [w.strip() for w in read(root + "wnids.txt").decode().splitlines() if w.strip()]
    label = {w: i for i, w in enumerate(wnids)}
    xs, ys = [], []
    for n in sorted(names):
        parts = n[len(root):].split("/")
        if (n.startswith(root) and len(parts) == 4 and parts[0] == "train"
                and parts[2] == "images" and parts[3].endswith(".JPEG")):
            if parts[1] not in label:
                raise ValueError(f"{path}: {n}: class {parts[1]} not in wnids.txt")
            xs.append(_decode_image(read(n), f"{path}:{n}"))
            ys.append(label[parts[1]])
    ann = read(root + "val/val_annotations.txt").decode().splitlines()
    xt, yt = [], []
    for line in sorted(a for a in ann if a.strip()):
        fname, wnid = line.split("\t")[:2]
        n = f"{root}val/images/{fname}"
        xt.append(_decode_image(read(n), f"{path}:{n}"))
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
    spec = dataset_spec(name)
    raw = Path(raw_dir)
    if spec.reader == "idx":
        return (*_read_idx_dataset(raw), spec.classes)
    if spec.reader in ("cifar", "cifar-64"):
        xtr, ytr, xte, yte, classes = (
            read_cifar_archive(raw / CIFAR_ARCHIVE) if (raw / CIFAR_ARCHIVE).is_file()
            else read_cifar_folder(raw / CIFAR_FOLDER))
        if spec.reader == "cifar-64":
            xtr, xte = _resize(xtr, 64), _resize(xte, 64)
        return xtr, ytr, xte, yte, classes
    zipped = raw / TINY_ARCHIVE
    return read_tiny_imagenet(zipped if zipped.is_file() else raw / TINY_FOLDER)


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
    spec = dataset_spec(name)
    raw_spec = dataset_spec(spec.raw_name)
    source, verified = (verification(raw_spec.name, raw_dir) if verify_md5
                        else ("unverified", "nothing (verify_md5=False)"))
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
        "verified": verified,
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
    """A prepared dataset file as DataSplits on ``device`` (a damaged one named: spp.atomic)."""
    d = load_tensors(path)
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
