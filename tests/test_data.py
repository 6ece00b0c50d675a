"""Dataset readers, checksums and archive safety, on tiny files written here in the official
formats and on the original files in ../shared/data when present."""

from __future__ import annotations

import gzip
import io
import pickle
import shutil
import struct
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from spp.data import datasets as data
from spp.data.archives import ChecksumError, UnsafeArchiveError, md5sum

# ------------------------------------------------------------------ writers of official formats


def write_idx_gz(path, array: np.ndarray) -> None:
    """IDX: bytes 0,0, type 0x08 (ubyte), ndim; big-endian uint32 dims; row-major data; gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist_like(folder, n_train=50, n_test=20, seed=0):
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    xtr = rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8)
    ytr = np.arange(n_train) % 10
    xte = rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8)
    yte = (np.arange(n_test) * 3) % 10
    write_idx_gz(folder / "train-images-idx3-ubyte.gz", xtr)
    write_idx_gz(folder / "train-labels-idx1-ubyte.gz", ytr)
    write_idx_gz(folder / "t10k-images-idx3-ubyte.gz", xte)
    write_idx_gz(folder / "t10k-labels-idx1-ubyte.gz", yte)
    return xtr, ytr, xte, yte


def _tar_add(tar, name, payload: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_cifar_archive(path, per_batch=4, n_test=6, seed=0, extra_members=()):
    """cifar-10-python.tar.gz layout: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta},
    pickles with bytes keys; data rows are 1024 R, 1024 G, 1024 B values (row-major 32x32)."""
    rng = np.random.RandomState(seed)
    rows, labels = [], []
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            d = rng.randint(0, 256, (per_batch, 3072)).astype(np.uint8)
            y = [int(v) for v in rng.randint(0, 10, per_batch)]
            rows.append(d)
            labels += y
            _tar_add(tar, f"cifar-10-batches-py/data_batch_{i}", pickle.dumps(
                {b"batch_label": b"x", b"labels": y, b"data": d, b"filenames": [b"a"] * per_batch},
                protocol=2))
        dt = rng.randint(0, 256, (n_test, 3072)).astype(np.uint8)
        yt = [int(v) for v in rng.randint(0, 10, n_test)]
        _tar_add(tar, "cifar-10-batches-py/test_batch", pickle.dumps(
            {b"batch_label": b"t", b"labels": yt, b"data": dt, b"filenames": [b"b"] * n_test},
            protocol=2))
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
                 b"ship", b"truck"]
        _tar_add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(
            {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072},
            protocol=2))
        for member in extra_members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return np.concatenate(rows), np.array(labels), dt, np.array(yt)


# ------------------------------------------------------------------------------------- readers


def test_idx_reader_and_prepare_split_and_stats(tmp_path):
    xtr, ytr, xte, yte = write_mnist_like(tmp_path / "raw")
    out = tmp_path / "mnist.pt"
    data.prepare("mnist", tmp_path / "raw", out, verify_md5=False)
    ds = data.load(out)

    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert torch.equal(ds.x["test"], torch.from_numpy(xte).unsqueeze(1))
    assert torch.equal(ds.y["test"], torch.from_numpy(yte).long())
    # val is the first 10% of a seed-0 permutation of the training set, independent of any seed
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    val_idx, train_idx = perm[:5].sort().values, perm[5:].sort().values
    assert torch.equal(ds.x["val"], torch.from_numpy(xtr[val_idx.numpy()]).unsqueeze(1))
    assert torch.equal(ds.x["train"], torch.from_numpy(xtr[train_idx.numpy()]).unsqueeze(1))
    assert torch.equal(ds.y["train"], torch.from_numpy(ytr[train_idx.numpy()]).long())
    # global mean/std over the whole official training set, in [0, 1] units (authors' code)
    assert ds.mean.shape == (1,) and ds.mean.item() == pytest.approx((xtr / 255.0).mean(), 1e-6)
    assert ds.std.item() == pytest.approx((xtr / 255.0).std(), 1e-6)
    x, _ = next(ds.batches("test", 100))
    expect = (xte / 255.0 - (xtr / 255.0).mean()) / (xtr / 255.0).std()
    assert np.allclose(x.squeeze(1).numpy(), expect, atol=1e-5)


def test_idx_truncated_body_is_refused(tmp_path):
    arr = np.zeros((3, 28, 28), np.uint8)
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 3, 28, 28)
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(header + arr.tobytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "x.gz")


def test_batches_cover_split_in_order_with_short_last_batch(tmp_path):
    write_mnist_like(tmp_path / "raw", n_train=50, n_test=23)
    data.prepare("mnist", tmp_path / "raw", tmp_path / "m.pt", verify_md5=False)
    ds = data.load(tmp_path / "m.pt")
    got = list(ds.batches("test", 10))
    assert [len(y) for _, y in got] == [10, 10, 3]
    assert torch.equal(torch.cat([y for _, y in got]), ds.y["test"])
    assert torch.allclose(torch.cat([x for x, _ in got]), ds.normalize(ds.x["test"]))
    with pytest.raises(ValueError, match="allowed"):
        next(ds.batches("dev", 10))


def test_cifar_reader_layout_and_per_channel_stats(tmp_path):
    (tmp_path / "raw").mkdir()
    rows, labels, test_rows, test_labels = write_cifar_archive(
        tmp_path / "raw" / "cifar-10-python.tar.gz")
    xtr, ytr, xte, yte, classes = data.read_cifar_archive(tmp_path / "raw/cifar-10-python.tar.gz")
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (6, 3, 32, 32)
    # pixel (c, h, w) of image i is data[i, c*1024 + h*32 + w]
    i, c, h, w = 7, 2, 5, 30
    assert xtr[i, c, h, w].item() == rows[i, c * 1024 + h * 32 + w]
    assert ytr.tolist() == labels.tolist() and yte.tolist() == test_labels.tolist()
    assert classes[0] == "airplane" and len(classes) == 10

    data.prepare("cifar10", tmp_path / "raw", tmp_path / "c.pt", verify_md5=False)
    ds = data.load(tmp_path / "c.pt")
    assert len(ds.y["val"]) == 2 and len(ds.y["train"]) == 18 and len(ds.y["test"]) == 6
    per_channel = rows.reshape(20, 3, 1024) / 255.0
    assert torch.allclose(ds.mean.double(), torch.from_numpy(per_channel.mean((0, 2))), atol=1e-6)
    assert torch.allclose(ds.std.double(), torch.from_numpy(per_channel.std((0, 2))), atol=1e-6)


def test_cifar_pickle_with_code_is_refused():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    from spp.data.archives import load_cifar_pickle

    with pytest.raises(pickle.UnpicklingError, match="refusing to load global .*print"):
        load_cifar_pickle(pickle.dumps({b"data": Evil()}, protocol=2))


def test_cifar64_stand_in_is_upsampled_cifar(tmp_path):
    (tmp_path / "raw").mkdir()
    write_cifar_archive(tmp_path / "raw" / "cifar-10-python.tar.gz")
    data.prepare("cifar10-64", tmp_path / "raw", tmp_path / "c64.pt", verify_md5=False)
    ds = data.load(tmp_path / "c64.pt")
    assert ds.input_shape == (3, 64, 64) and ds.x["train"].shape[1:] == (3, 64, 64)
    assert "STAND-IN" in ds.note and "Tiny-ImageNet" in ds.note
    # bilinear 2x upsampling preserves the per-image mean closely
    small = data.read_cifar_archive(tmp_path / "raw" / "cifar-10-python.tar.gz")[2]
    assert torch.allclose(ds.x["test"].float().mean((1, 2, 3)), small.float().mean((1, 2, 3)),
                          atol=2.0)


def _jpeg(colour, mode="RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (64, 64), colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_tiny_imagenet(path, extra=()):
    """tiny-imagenet-200.zip layout: wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG
    with val/val_annotations.txt (file, wnid, box)."""
    wnids = ["n02", "n01", "n03"]  # deliberately not sorted: labels follow wnids.txt order
    colours = {"n02": (200, 10, 10), "n01": (10, 200, 10), "n03": (10, 10, 200)}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids) + "\n")
        for w in wnids:
            for k in range(2):
                zf.writestr(f"tiny-imagenet-200/train/{w}/images/{w}_{k}.JPEG", _jpeg(colours[w]))
            zf.writestr(f"tiny-imagenet-200/train/{w}/{w}_boxes.txt", "")
        zf.writestr("tiny-imagenet-200/train/n01/images/n01_9.JPEG", _jpeg(128, mode="L"))
        ann = []
        for k, w in enumerate(["n03", "n01", "n02", "n03"]):
            zf.writestr(f"tiny-imagenet-200/val/images/val_{k}.JPEG", _jpeg(colours[w]))
            ann.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
        zf.writestr("tiny-imagenet-200/val/val_annotations.txt", "\n".join(ann) + "\n")
        zf.writestr("tiny-imagenet-200/test/images/test_0.JPEG", _jpeg((0, 0, 0)))
        for name, payload in extra:
            zf.writestr(name, payload)


def test_tiny_imagenet_reader(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "raw").mkdir()
    write_tiny_imagenet(tmp_path / "raw" / "tiny-imagenet-200.zip")
    xtr, ytr, xte, yte, wnids = data.read_tiny_imagenet(tmp_path / "raw/tiny-imagenet-200.zip")
    assert wnids == ("n02", "n01", "n03")
    assert xtr.shape == (7, 3, 64, 64) and xtr.dtype == torch.uint8
    assert sorted(ytr.tolist()) == [0, 0, 1, 1, 1, 2, 2]
    assert yte.tolist() == [2, 1, 0, 2]  # val_0..val_3 labelled via val_annotations.txt
    # colour n03 = blue, label 2; the greyscale image became RGB with equal channels
    blue = xte[0].float().mean((1, 2))
    assert blue[2] > 180 and blue[0] < 40
    grey = xtr[(ytr == 1).nonzero().flatten()].float().mean((2, 3))
    assert any((abs(g - 128) < 3).all() for g in grey)
    data.prepare("tiny-imagenet", tmp_path / "raw", tmp_path / "t.pt", verify_md5=False)
    ds = data.load(tmp_path / "t.pt")
    assert ds.num_classes == 200 and len(ds.y["test"]) == 4 and ds.mean.shape == (3,)


# ------------------------------------------------------------------------- checksums and fetch


def test_shipped_subsets_match_their_registered_md5(tmp_path, repo_root):
    files = (repo_root / "data" / "subsets").rglob("*")
    total = sum(f.stat().st_size for f in files if f.is_file())
    assert total <= 10 * 2**20
    for name in ("mnist", "fashion-mnist", "cifar10"):
        raw = data.fetch(name, tmp_path / name, source="subset")
        assert data.verify(name, raw) == "subset"


def test_shipped_mnist_subset_prepares_to_real_digits(tmp_path):
    raw = data.fetch("mnist", tmp_path / "raw", source="subset")
    data.prepare("mnist", raw, tmp_path / "m.pt")
    ds = data.load(tmp_path / "m.pt")
    assert [len(ds.y[s]) for s in data.SPLITS] == [5400, 600, 1000]
    assert ds.y["test"].bincount().tolist() == [100] * 10
    assert ds.mean.item() == pytest.approx(0.1307, abs=0.003)  # MNIST's well-known mean


def test_corrupted_mirror_file_names_file_md5s_and_remedy(tmp_path, repo_root):
    mirror = tmp_path / "mirror"
    shutil.copytree(repo_root / "data" / "subsets" / "mnist", mirror)
    bad = mirror / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-7])  # truncated
    expected = data.expected_md5("mnist", "subset")[bad.name]
    with pytest.raises(ChecksumError) as e:
        data.fetch("mnist", tmp_path / "raw", mirror=mirror, source="subset")
    msg = str(e.value)
    assert bad.name in msg and expected in msg and md5sum(bad) in msg and "mirror" in msg
    assert not (tmp_path / "raw" / bad.name).exists()  # never given the final name
    assert not list((tmp_path / "raw").glob("*.part"))


def test_corrupted_raw_file_is_an_error_naming_it(tmp_path):
    raw = data.fetch("mnist", tmp_path / "raw", source="subset")
    f = raw / "train-labels-idx1-ubyte.gz"
    content = bytearray(f.read_bytes())
    content[100] ^= 0xFF
    f.write_bytes(bytes(content))
    for call in (lambda: data.fetch("mnist", raw, source="subset"),
                 lambda: data.prepare("mnist", raw, tmp_path / "m.pt")):
        with pytest.raises(ChecksumError) as e:
            call()
        msg = str(e.value)
        assert str(f) in msg and md5sum(f) in msg and "elete" in msg
        assert data.expected_md5("mnist", "subset")[f.name] in msg


def test_bad_names_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="mnist"):
        data.fetch("imagenet", tmp_path)
    with pytest.raises(ValueError, match="official"):
        data.fetch("mnist", tmp_path, source="web")
    with pytest.raises(ValueError, match="mnist"):
        data.fetch("tiny-imagenet", tmp_path, source="subset")


def test_registry_holds_the_published_checksums():
    assert data.DATASETS["cifar10"].files == {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
    assert data.DATASETS["tiny-imagenet"].files == {
        "tiny-imagenet-200.zip": "90528d7ca1a48142e341f4ef8d21d0de"}
    assert data.DATASETS["mnist"].files["train-images-idx3-ubyte.gz"] == (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873")


# ----------------------------------------------------------------------------- archive safety


@pytest.mark.parametrize("name", ["../evil", "cifar-10-batches-py/../../evil", "/tmp/evil"])
def test_tar_member_outside_target_is_refused(tmp_path, name):
    info = tarfile.TarInfo(name)
    info.size = 3
    write_cifar_archive(tmp_path / "c.tar.gz", extra_members=[info])
    with pytest.raises(UnsafeArchiveError, match="refusing member") as e:
        data.read_cifar_archive(tmp_path / "c.tar.gz")
    assert repr(name) in str(e.value)


def test_tar_link_pointing_outside_is_refused(tmp_path):
    link = tarfile.TarInfo("cifar-10-batches-py/readme.html")
    link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    write_cifar_archive(tmp_path / "c.tar.gz", extra_members=[link])
    with pytest.raises(UnsafeArchiveError, match="links to"):
        data.read_cifar_archive(tmp_path / "c.tar.gz")


def test_zip_member_outside_target_is_refused(tmp_path):
    write_tiny_imagenet(tmp_path / "t.zip", extra=[("tiny-imagenet-200/../../evil.txt", b"x")])
    with pytest.raises(UnsafeArchiveError, match="evil.txt"):
        data.read_tiny_imagenet(tmp_path / "t.zip")


# -------------------------------------------------------------------------- the original files


def test_real_mnist_and_fashion_mnist(shared_data, tmp_path):
    for name, mean in (("mnist", 0.1307), ("fashion-mnist", 0.2860)):
        raw = data.fetch(name, tmp_path / name, mirror=shared_data)
        assert data.verify(name, raw) == "official"
        data.prepare(name, raw, tmp_path / f"{name}.pt")
        ds = data.load(tmp_path / f"{name}.pt")
        assert [len(ds.y[s]) for s in data.SPLITS] == [54000, 6000, 10000]
        assert ds.y["test"].bincount().tolist() == (
            [1000] * 10 if name == "fashion-mnist" else ds.y["test"].bincount().tolist())
        assert ds.mean.item() == pytest.approx(mean, abs=5e-4)


def test_real_cifar_subset_archive(shared_data):
    path = shared_data / "cifar10-subset" / "cifar-10-python-subset.tar.gz"
    xtr, ytr, xte, yte, classes = data.read_cifar_archive(path)
    assert xtr.shape == (5000, 3, 32, 32) and xte.shape == (1000, 3, 32, 32)
    assert ytr.bincount().tolist() == [500] * 10 and yte.bincount().tolist() == [100] * 10
    assert classes[-1] == "truck"


def test_shipped_subset_is_rebuilt_bit_identically(shared_data, tmp_path):
    from spp.data.subsets import build

    sums = build(shared_data, tmp_path, names=("mnist",))
    assert sums["mnist"] == data.expected_md5("mnist", "subset")


def test_first_examples_is_exact_and_the_one_helper_everyone_uses():
    """Scores and Jacobians "over N examples" see exactly N (the last batch cut), in the core
    stages and the figures alike (Frankle et al.'s runs score N images per class instead:
    tests/test_lth_protocol.py)."""
    import torch
    from spp.data.datasets import first_examples

    batches = [(torch.arange(i, i + 100), torch.zeros(100)) for i in range(0, 1000, 100)]
    got = list(first_examples(iter(batches), 250))
    assert [len(x) for x, _ in got] == [100, 100, 50]
    assert torch.equal(torch.cat([x for x, _ in got]), torch.arange(250))
    assert sum(len(x) for x, _ in first_examples(iter(batches), None)) == 1000

