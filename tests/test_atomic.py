"""One atomic writer (spp.atomic) for every result file: a failed write keeps the old file."""

import json

import pandas as pd
import pytest
import torch
from spp import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    atomic.write_json({"error": 1.5}, path)

    def dies(tmp):
        tmp.write_text("{half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(path, dies)
    assert json.loads(path.read_text()) == {"error": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_every_kind_round_trips(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "hi\n")
    atomic.write_csv(pd.DataFrame({"x": [1, 2]}), tmp_path / "a.csv")
    atomic.save_tensors({"w": torch.ones(2)}, tmp_path / "a.pt")
    assert (tmp_path / "a.txt").read_text() == "hi\n"
    assert pd.read_csv(tmp_path / "a.csv")["x"].tolist() == [1, 2]
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], torch.ones(2))
    assert all(oct(p.stat().st_mode)[-3:] == "644" for p in tmp_path.iterdir())


def test_a_figure_keeps_the_format_of_its_suffix(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from spp.report.plotting import save_figure

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    save_figure(fig, tmp_path / "f.png", tmp_path / "f.svg")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:400]


FILL = """
import resource, sys, torch
sys.path.insert(0, {workflow!r})
from spp import atomic
atomic.write_text({path!r}, "old")
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
try:
    atomic.save_tensors({{"w": torch.zeros(100_000)}}, {path!r})
except OSError as e:
    print(e)
"""


def test_no_room_for_a_file_is_said_naming_it_and_the_old_file_stays(tmp_path):
    """torch.save on a full disk says only "unexpected pos 704 vs 598"; the writer names the file
    and the cause (here a file-size limit, a full disk's twin that needs no mount)."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "w.pt"
    workflow = str(Path(atomic.__file__).resolve().parents[1])
    r = subprocess.run([sys.executable, "-c", FILL.format(workflow=workflow, path=str(path))],
                       capture_output=True, text=True, timeout=120)
    assert f"{path}: not written, file size limit of 65536 bytes reached" in r.stdout, r
    assert "untouched" in r.stdout and path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]
