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
