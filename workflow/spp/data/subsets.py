"""Build the small real dataset subsets shipped in ``data/subsets/``: ``python -m
spp.data.subsets``.

They let the quick preset and the tests run offline on genuine images. Each subset keeps the
official file names and format (gzipped IDX; a ``cifar-10-python.tar.gz`` of Python-2-style
pickles), so the same readers and the same workflow rules handle subset and full data; only the
image counts and the md5 sums differ (both sums are in ``spp.data.specs.DATASETS``).

Images are chosen class-balanced at random (seed 0) and kept in their original order. The output
is byte-for-byte reproducible (gzip and tar timestamps fixed), so the recorded sums stay valid.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch

from spp.data.archives import md5sum
from spp.data.datasets import REPO_SUBSETS, read_cifar_archive, read_idx

# dataset -> (train images, test images) kept
SIZES = {"mnist": (6000, 1000), "fashion-mnist": (3000, 1000), "cifar10": (1000, 500)}
CIFAR_SOURCE = "cifar10-subset/cifar-10-python-subset.tar.gz"
_MTIME = 1244498542  # the official CIFAR-10 archive's member timestamps


def balanced_choice(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of n examples, n / num_classes per class, drawn at random."""
    classes = labels.unique()
    per = n // len(classes)
    if per * len(classes) != n:
        raise ValueError(f"n={n} is not a multiple of the {len(classes)} classes")
    rng = np.random.RandomState(seed)
    picked = []
    for c in classes.tolist():
        idx = (labels == c).nonzero().flatten().numpy()
        if len(idx) < per:
            raise ValueError(f"class {c} has {len(idx)} examples, {per} needed")
        picked.append(rng.choice(idx, per, replace=False))
    return torch.from_numpy(np.sort(np.concatenate(picked)))


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


def idx_bytes(t: torch.Tensor) -> bytes:
    """An unsigned-byte IDX file (magic 0,0,8,ndim; big-endian dims; row-major data)."""
    t = t.to(torch.uint8).contiguous()
    return bytes([0, 0, 8, t.dim()]) + struct.pack(f">{t.dim()}I", *t.shape) + t.numpy().tobytes()


def write_idx_dataset(out: Path, xtr, ytr, xte, yte) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for fname, t in (("train-images-idx3-ubyte.gz", xtr.squeeze(1)),
                     ("train-labels-idx1-ubyte.gz", ytr),
                     ("t10k-images-idx3-ubyte.gz", xte.squeeze(1)),
                     ("t10k-labels-idx1-ubyte.gz", yte)):
        (out / fname).write_bytes(_gzip_bytes(idx_bytes(t)))


def cifar_archive_bytes(xtr, ytr, xte, yte, classes, n_batches: int = 5) -> bytes:
    """A cifar-10-python.tar.gz in the official layout for the given uint8 NCHW images."""
    def batch(label, x, y):
        return pickle.dumps({
            b"batch_label": label.encode(),
            b"labels": [int(v) for v in y],
            b"data": x.reshape(len(x), -1).numpy().astype(np.uint8),
            b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(x))],
        }, protocol=2)

    per = len(xtr) // n_batches
    files = {}
    for i in range(n_batches):
        sl = slice(i * per, (i + 1) * per if i < n_batches - 1 else len(xtr))
        files[f"data_batch_{i + 1}"] = batch(f"training batch {i + 1} of {n_batches}",
                                             xtr[sl], ytr[sl])
    files["test_batch"] = batch("testing batch 1 of 1", xte, yte)
    files["batches.meta"] = pickle.dumps({
        b"num_cases_per_batch": per,
        b"label_names": [c.encode() for c in classes],
        b"num_vis": 3072,
    }, protocol=2)
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mtime, info.mode = len(files[name]), _MTIME, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return _gzip_bytes(tbuf.getvalue())


def build(shared: Path, out: Path = REPO_SUBSETS,
          names: tuple[str, ...] = tuple(SIZES)) -> dict[str, dict[str, str]]:
    """Write the named subsets under ``out``; return dataset -> file -> md5."""
    unknown = set(names) - set(SIZES)
    if unknown:
        raise ValueError(f"no subset for {sorted(unknown)}; allowed: {', '.join(SIZES)}")
    sums = {}
    for name in ("mnist", "fashion-mnist"):
        if name not in names:
            continue
        n_tr, n_te = SIZES[name]
        src = shared / name
        xtr = read_idx(src / "train-images-idx3-ubyte.gz").unsqueeze(1)
        ytr = read_idx(src / "train-labels-idx1-ubyte.gz")
        xte = read_idx(src / "t10k-images-idx3-ubyte.gz").unsqueeze(1)
        yte = read_idx(src / "t10k-labels-idx1-ubyte.gz")
        tr, te = balanced_choice(ytr, n_tr), balanced_choice(yte, n_te)
        write_idx_dataset(out / name, xtr[tr], ytr[tr], xte[te], yte[te])
        sums[name] = {f.name: md5sum(f) for f in sorted((out / name).iterdir())}
    if "cifar10" not in names:
        return sums
    n_tr, n_te = SIZES["cifar10"]
    xtr, ytr, xte, yte, classes = read_cifar_archive(shared / CIFAR_SOURCE)
    tr, te = balanced_choice(ytr, n_tr), balanced_choice(yte, n_te)
    (out / "cifar10").mkdir(parents=True, exist_ok=True)
    target = out / "cifar10" / "cifar-10-python.tar.gz"
    target.write_bytes(cifar_archive_bytes(xtr[tr], ytr[tr], xte[te], yte[te], classes))
    sums["cifar10"] = {target.name: md5sum(target)}
    return sums


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO_SUBSETS.parents[2] / "shared" / "data",
                   help="folder with the original files (default: ../shared/data)")
    p.add_argument("--out", type=Path, default=REPO_SUBSETS)
    a = p.parse_args(argv)
    for name, files in build(a.shared, a.out).items():
        for f, s in files.items():
            size = (a.out / name / f).stat().st_size
            print(f"{name}/{f}  {size} bytes  md5 {s}")


if __name__ == "__main__":
    main()
