"""data.mirror pointed at a torchvision dataset root: each layout written here (from the shipped
subsets, so the md5s are real), fetched and prepared as the workflow does, must give the flat
mirror's tensors; where torchvision imports, its own loaders must read the same pixels."""

from __future__ import annotations

import dataclasses
import gzip
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from spp.data import datasets as data
from spp.data.archives import ChecksumError, md5sum, read_tar

REPO = Path(__file__).resolve().parents[1]
SUBSETS = REPO / "data" / "subsets"
TV_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def write_torchvision_root(root: Path, keep_archives: bool = True) -> Path:
    """What torchvision leaves after download=True, from the shipped subsets: MNIST/raw and
    FashionMNIST/raw with each .gz and its decompressed file, cifar-10-python.tar.gz beside its
    extracted cifar-10-batches-py/. keep_archives=False: only the extracted files."""
    for name, folder in TV_DIR.items():
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        for gz in sorted((SUBSETS / name).glob("*.gz")):
            (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
            if keep_archives:
                shutil.copyfile(gz, raw / gz.name)
    archive = SUBSETS / "cifar10" / "cifar-10-python.tar.gz"
    for member, payload in read_tar(archive, lambda n: True).items():
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        (root / member).write_bytes(payload)
    if keep_archives:
        shutil.copyfile(archive, root / archive.name)
    return root


def prepared(name, tmp_path, tag, mirror=None, source="subset"):
    raw = data.fetch(name, tmp_path / tag / "raw", mirror=mirror, source=source)
    data.prepare(name, raw, tmp_path / tag / f"{name}.pt")
    return data.load(tmp_path / tag / f"{name}.pt"), raw


def assert_same(a, b):
    for s in data.SPLITS:
        assert torch.equal(a.x[s], b.x[s]) and torch.equal(a.y[s], b.y[s]), s
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert a.classes == b.classes


def verified(tmp_path, tag, name) -> str:
    return torch.load(tmp_path / tag / f"{name}.pt", weights_only=True)["verified"]


@pytest.mark.parametrize("keep_archives", [True, False], ids=["with-archives", "extracted-only"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar10-64"])
def test_torchvision_root_gives_the_flat_mirrors_tensors(tmp_path, name, keep_archives):
    root = write_torchvision_root(tmp_path / "tv", keep_archives)
    flat, _ = prepared(name, tmp_path, "flat")
    tv, raw = prepared(name, tmp_path, "tv", mirror=root)
    assert_same(flat, tv)
    what = verified(tmp_path, "tv", name)
    if keep_archives:  # the original files are preferred: their published sums are checked
        assert what == verified(tmp_path, "flat", name)
        assert not [p for p in raw.rglob("*") if p.is_file() and p.suffix != ".gz"]
    else:  # the extracted files, each against its own sum, and the record says which
        extracted = (["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/batches.meta"]
                     if name.startswith("cifar") else ["train-images-idx3-ubyte"])
        assert what.startswith("subset: md5 of") and all(e in what for e in extracted)
        assert ".gz" not in what


def test_one_root_serves_every_dataset_and_the_gz_wins(tmp_path, capsys):
    root = write_torchvision_root(tmp_path / "tv")
    for name in ("mnist", "fashion-mnist", "cifar10"):
        data.fetch(name, tmp_path / name, mirror=root, source="subset")
    out = capsys.readouterr().out
    for folder in ("MNIST", "FashionMNIST"):
        assert "train-images-idx3-ubyte.gz: md5 " in out and f"from {root / folder / 'raw'}" in out
    assert f"cifar-10-python.tar.gz: md5 18e3cea5a0810f1342991ebe142ed5e3 (subset cifar10), " \
           f"from {root}" in out
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        data.DATASETS["mnist"].files)


def test_corrupted_extracted_file_is_refused_with_its_sums(tmp_path):
    root = write_torchvision_root(tmp_path / "tv", keep_archives=False)
    bad = root / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(ChecksumError) as e:
        data.fetch("cifar10", tmp_path / "raw", mirror=root, source="subset")
    want = data.DATASETS["cifar10"].subset_unpacked["cifar-10-python.tar.gz"]
    msg = str(e.value)
    assert "data_batch_3" in msg and want["cifar-10-batches-py/data_batch_3"] in msg
    assert md5sum(bad) in msg
    # an extracted file corrupted after the fetch is caught by prepare's check
    root2 = write_torchvision_root(tmp_path / "tv2", keep_archives=False)
    raw = data.fetch("mnist", tmp_path / "raw2", mirror=root2, source="subset")
    f = raw / "t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:-1] + b"\x07")
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.*elete"):
        data.prepare("mnist", raw, tmp_path / "m.pt")


def test_missing_dataset_names_every_folder_searched(tmp_path):
    root = tmp_path / "tv"
    (root / "MNIST" / "raw").mkdir(parents=True)
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte.txt").write_bytes(b"x")  # not it
    with pytest.raises(FileNotFoundError) as e:
        data.fetch("mnist", tmp_path / "raw", mirror=root, source="subset")
    msg = str(e.value)
    for folder in data.mirror_folders(root, "mnist"):
        assert str(folder) in msg
    assert str(root / "MNIST" / "raw") in msg and "train-images-idx3-ubyte.gz" in msg
    assert "torchvision" in msg
    (root / "cifar-10-batches-py").mkdir()
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    with pytest.raises(FileNotFoundError) as e:
        data.fetch("cifar10", tmp_path / "raw", mirror=root, source="subset")
    assert "holds cifar-10-batches-py/data_batch_1 but not" in str(e.value)  # a partial copy


# ------------------------------------------------------------------------------ Tiny-ImageNet


def _jpeg(colour) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_tiny_folder(folder: Path) -> None:
    """The extracted tiny-imagenet-200/: wnids.txt, words.txt, train/<wnid>/images/*.JPEG with
    <wnid>_boxes.txt, val/images + val_annotations.txt, test/images."""
    wnids = ["n02", "n01", "n03"]  # not sorted: labels follow wnids.txt order
    files = {"wnids.txt": "\n".join(wnids) + "\n",
             "words.txt": "".join(f"{w}\tthing {w}\n" for w in wnids)}
    for k, w in enumerate(wnids):
        for i in range(2):
            files[f"train/{w}/images/{w}_{i}.JPEG"] = _jpeg((40 * k + 20 * i, 200 - 50 * k, 9))
        files[f"train/{w}/{w}_boxes.txt"] = ""
    ann = []
    for i, w in enumerate(["n03", "n01", "n02", "n03"]):
        files[f"val/images/val_{i}.JPEG"] = _jpeg((10, 60 * i, 250 - 60 * i))
        ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n")
    files["val/val_annotations.txt"] = "".join(ann)
    files["test/images/test_0.JPEG"] = _jpeg((0, 0, 0))
    for rel, payload in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(payload.encode() if isinstance(payload, str) else payload)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """An extracted tiny-imagenet-200/ in a torchvision-style root, the zip of the same files in
    a flat mirror; the registry's zip md5 and folder counts set to these tiny ones."""
    pytest.importorskip("PIL")
    folder = tmp_path / "tv" / "tiny-imagenet-200"
    write_tiny_folder(folder)
    (tmp_path / "flat").mkdir()
    zipped = tmp_path / "flat" / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder.parent).as_posix())
    spec = data.DATASETS["tiny-imagenet"]
    monkeypatch.setitem(data.DATASETS, "tiny-imagenet", dataclasses.replace(
        spec, files={"tiny-imagenet-200.zip": md5sum(zipped)}))
    monkeypatch.setattr(data, "TINY_IMAGENET_COUNTS",
                        {"classes": 3, "train_per_class": 2, "val": 4})
    return tmp_path / "tv", tmp_path / "flat"


def test_extracted_tiny_imagenet_folder_gives_the_zips_tensors(tmp_path, tiny):
    root, flat_mirror = tiny
    flat, _ = prepared("tiny-imagenet", tmp_path, "flat", mirror=flat_mirror, source="official")
    tv, raw = prepared("tiny-imagenet", tmp_path, "tv", mirror=root, source="official")
    assert_same(flat, tv)
    assert tv.y["test"].tolist() == [2, 1, 0, 2] and len(tv.y["train"]) + len(tv.y["val"]) == 6
    what = verified(tmp_path, "tv", "tiny-imagenet")
    assert "counted 3 classes x 2 training and 4 annotated val images" in what
    assert "no md5" in what and (raw / "tiny-imagenet-200" / "wnids.txt").is_file()
    assert not list(raw.glob("*.part"))


def test_incomplete_tiny_imagenet_folder_is_refused_before_copying(tmp_path, tiny):
    root, _ = tiny
    (root / "tiny-imagenet-200" / "train" / "n01" / "images" / "n01_1.JPEG").unlink()
    with pytest.raises(ChecksumError) as e:
        data.fetch("tiny-imagenet", tmp_path / "raw", mirror=root)
    assert "n01 (1)" in str(e.value) and "not a complete tiny-imagenet-200 folder" in str(e.value)
    assert not (tmp_path / "raw" / "tiny-imagenet-200").exists()


# ------------------------------------------------------------------------ registered checksums


def test_registered_extracted_subset_sums_are_the_shipped_files(tmp_path):
    for name in ("mnist", "fashion-mnist"):
        for gz, form in data.DATASETS[name].subset_unpacked.items():
            [(path, md5)] = form.items()
            tmp = tmp_path / path
            tmp.write_bytes(gzip.decompress((SUBSETS / name / gz).read_bytes()))
            assert md5sum(tmp) == md5, (name, path)
    members = read_tar(SUBSETS / "cifar10" / "cifar-10-python.tar.gz", lambda n: True)
    want = data.DATASETS["cifar10"].subset_unpacked["cifar-10-python.tar.gz"]
    assert set(members) == set(want)
    for member, payload in members.items():
        (tmp_path / "m").write_bytes(payload)
        assert md5sum(tmp_path / "m") == want[member], member


def test_registered_extracted_official_sums_are_the_official_files(shared_data, tmp_path):
    for name in ("mnist", "fashion-mnist"):
        root = tmp_path / name
        (root / TV_DIR[name] / "raw").mkdir(parents=True)
        for gz, form in data.DATASETS[name].unpacked.items():
            [(path, _)] = form.items()
            (root / TV_DIR[name] / "raw" / path).write_bytes(
                gzip.decompress((shared_data / name / gz).read_bytes()))
        raw = data.fetch(name, tmp_path / f"raw-{name}", mirror=root)  # extracted files only
        assert data.verification(name, raw)[0] == "official"


# ---------------------------------------------------------------------------- the workflow


@pytest.mark.slow  # one Snakemake run of two data jobs, about half a minute
def test_the_workflows_data_rule_reads_a_torchvision_root(tmp_path):
    root = write_torchvision_root(tmp_path / "tv", keep_archives=False)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["data"] = {"source": "subset", "mirror": str(root)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    targets = [f"results/quick/data/{n}.pt" for n in ("mnist", "cifar10")]
    r = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                        *targets, "--cores", "1", "--directory", str(run),
                        "--configfile", str(tmp_path / "config.yaml")],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for name, target in zip(("mnist", "cifar10"), targets, strict=True):
        flat, _ = prepared(name, tmp_path, "flat")
        assert_same(flat, data.load(run / target))
        log = (run / "results" / "quick" / "logs" / "data" / f"{name}.log").read_text()
        assert f"from {root}" in log


# ------------------------------------------------------------- torchvision's own loaders


def _torchvision_datasets():
    try:
        import torchvision.datasets as tvd
    except Exception as e:  # noqa: BLE001 - a broken build raises more than ImportError
        pytest.skip(f"torchvision does not import here ({type(e).__name__}: {str(e)[:120]}); "
                    "benchmarks/gpu_check.sh runs this cross-check where it does")
    return tvd


def _tv_loader(tvd, name):
    if name != "cifar10":
        return getattr(tvd, TV_DIR[name])
    sums = {p.split("/")[-1]: m for p, m in
            data.DATASETS["cifar10"].subset_unpacked["cifar-10-python.tar.gz"].items()}

    class SubsetCIFAR10(tvd.CIFAR10):  # torchvision checks these md5s: the shipped subset's
        train_list = [[f"data_batch_{i}", sums[f"data_batch_{i}"]] for i in range(1, 6)]
        test_list = [["test_batch", sums["test_batch"]]]
        meta = {**tvd.CIFAR10.meta, "md5": sums["batches.meta"]}

    return SubsetCIFAR10


def _as_nchw(images) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_torchvision_loaders_read_the_same_pixels_and_labels(tmp_path, name):
    tvd = _torchvision_datasets()
    root = write_torchvision_root(tmp_path / "tv")
    ours, _ = prepared(name, tmp_path, "spp", mirror=root)
    loader = _tv_loader(tvd, name)
    train = loader(str(root), train=True, download=False)
    test = loader(str(root), train=False, download=False)
    tr, va = data.val_split(len(train))
    x, y = _as_nchw(train.data), torch.as_tensor(np.asarray(train.targets)).long()
    for split, idx in (("train", tr), ("val", va)):
        assert torch.equal(ours.x[split], x[idx]), split
        assert torch.equal(ours.y[split], y[idx]), split
    assert torch.equal(ours.x["test"], _as_nchw(test.data))
    assert torch.equal(ours.y["test"], torch.as_tensor(np.asarray(test.targets)).long())
    for k in (0, 7, len(tr) - 1):  # through __getitem__ (a PIL image) too
        image, label = train[int(tr[k])]
        assert torch.equal(_as_nchw(np.asarray(image)[None])[0], ours.x["train"][k])
        assert label == int(ours.y["train"][k])
    if name != "mnist":  # torchvision's MNIST names classes "0 - zero", ...
        assert tuple(train.classes) == ours.classes
