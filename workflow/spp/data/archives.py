"""Checksums and safe, in-memory reading of downloaded archives.

Downloaded archives are untrusted input: a member named ``../x`` or ``/etc/x``, or a link that
points outside, could write anywhere if extracted. We never extract to disk at all; members are
read into memory, and an archive holding any such member is refused outright, before any member
is read. CIFAR-10's Python pickles are unpickled with an allow-list of the few numpy globals they
need, so even a file that passed its checksum cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import posixpath
import tarfile
import zipfile
from pathlib import Path


class ChecksumError(ValueError):
    """A file's md5 differs from the published one."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the extraction folder."""


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_md5(path: str | Path, expected: str, hint: str = "") -> None:
    """Raise ChecksumError naming the file, both sums and the remedy when they differ."""
    actual = md5sum(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: md5 mismatch: expected {expected}, got {actual}. The file is corrupted, "
            f"truncated or not the original. Delete it and fetch it again"
            + (f" ({hint})" if hint else "")
            + "; if it came from a mirror folder, check the mirror's copy against the "
            "published md5."
        )


def check_member_name(archive: str | Path, name: str, link_target: str | None = None) -> None:
    """Refuse absolute names, names with a `..` component, and links that leave the folder."""
    norm = name.replace("\\", "/")
    parts = norm.split("/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(
            f"{archive}: refusing member {name!r}: its path is absolute or contains '..', so it "
            "would be written outside the target folder. The archive is not the original; "
            "delete it."
        )
    if link_target is not None:
        target = link_target.replace("\\", "/")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise UnsafeArchiveError(
                f"{archive}: refusing member {name!r}: it links to {link_target!r}, outside the "
                "target folder. The archive is not the original; delete it."
            )


def read_tar(path: str | Path, wanted) -> dict[str, bytes]:
    """Bytes of the regular-file members whose name satisfies ``wanted(name)``.

    Every member is checked first (see check_member_name); nothing touches the disk.
    """
    out: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:*") as tar:
        members = tar.getmembers()
        for m in members:
            link = m.linkname if (m.issym() or m.islnk()) else None
            check_member_name(path, m.name, link)
        for m in members:
            if m.isfile() and wanted(m.name):
                f = tar.extractfile(m)
                out[m.name] = f.read()
    return out


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """A ZipFile whose member names have all been checked (zip has no portable links)."""
    zf = zipfile.ZipFile(path)
    try:
        for name in zf.namelist():
            check_member_name(path, name)
    except Exception:
        zf.close()
        raise
    return zf


_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes objects in protocol-2 pickles
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR pickle holds only numpy arrays, "
                "lists, bytes and numbers"
            )
        return super().find_class(module, name)


def load_cifar_pickle(data: bytes):
    """Unpickle a CIFAR batch (Python-2 pickle, bytes keys) allowing only numpy arrays."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
