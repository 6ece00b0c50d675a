"""Report figures draw exactly the data they are given, in files a browser can show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from spp.report import plotting


def _masks(rng, shapes, sparsities):
    scores = [rng.random(s) for s in shapes]
    flat = np.concatenate([s.ravel() for s in scores])
    out = {}
    for k in sparsities:
        thr = np.quantile(flat, k)
        out[k] = [s > thr for s in scores]
    return out, scores


def test_save_figure_writes_png_and_svg_atomically(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png, svg = tmp_path / "sub" / "f.png", tmp_path / "sub" / "f.svg"
    plotting.save_figure(fig, png, svg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text()[:2000]
    assert sorted(p.name for p in png.parent.iterdir()) == ["f.png", "f.svg"]  # no temp files
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf"):
        plotting.save_figure(plt.figure(), tmp_path / "f.jpg")


def test_method_labels_follow_the_paper():
    assert plotting.method_label("orthogonal", "snip", ai=True) == "LDI-CS-AI"
    assert plotting.method_label("vs-lecun", "random") == "VS-Rand"
    with pytest.raises(ValueError, match="allowed"):
        plotting.method_label("xavier", "snip")
    ai, plain = plotting.method_style("LDI-CS-AI"), plotting.method_style("LDI-CS")
    assert ai["color"] == plain["color"] and ai["linestyle"] != plain["linestyle"]


def test_figure1_shows_each_mask_white_kept_black_pruned():
    rng = np.random.default_rng(0)
    shapes = [(20, 30), (20, 20), (5, 20)]
    sparsities = [0.1, 0.5, 0.9]
    pats, scores = {}, {}
    for act in ("linear", "tanh"):
        pats[act], scores[act] = _masks(rng, shapes, sparsities)
    fig = plotting.figure1(pats, scores)
    image_axes = [ax for ax in fig.get_axes() if ax.images]
    assert len(image_axes) == 2 * len(sparsities) * len(shapes)
    # Axes are created activation by activation, row (sparsity) by row, layer by layer.
    first_tanh_90 = image_axes[len(sparsities) * len(shapes) + 2 * len(shapes) + 1]
    np.testing.assert_array_equal(
        first_tanh_90.images[0].get_array(), pats["tanh"][0.9][1].astype(float)
    )
    im = first_tanh_90.images[0]
    assert im.get_cmap().name == "gray" and im.get_clim() == (0, 1)  # 1 = kept = white
    box_axes = [ax for ax in fig.get_axes() if not ax.images]
    assert len(box_axes) == 2 and all(ax.get_yscale() == "log" for ax in box_axes)


def test_figure1_refuses_inconsistent_inputs():
    rng = np.random.default_rng(0)
    pats, scores = _masks(rng, [(4, 4), (4, 4)], [0.5])
    with pytest.raises(ValueError, match="different activations"):
        plotting.figure1({"tanh": pats}, {"linear": scores})
    with pytest.raises(ValueError, match="one per layer"):
        plotting.figure1({"tanh": pats}, {"tanh": scores[:1]})


def test_figure2_signal_plots_the_seed_mean_per_method():
    rows = []
    for act in ("linear", "tanh"):
        for method in ("LDI-CS", "LDI-CS-AI"):
            for s in (0.0, 0.5, 0.9):
                for seed, value in enumerate((1.0 - s, 1.0 - s / 2)):
                    rows.append(
                        {
                            "activation": act,
                            "method": method,
                            "sparsity": s,
                            "seed": seed,
                            "mean": value,
                        }  # fmt: skip
                    )
    fig = plotting.figure2_signal(pd.DataFrame(rows))
    ax = fig.get_axes()[0]
    line = next(l for l in ax.get_lines() if l.get_label() == "LDI-CS")
    np.testing.assert_allclose(line.get_xdata(), [0, 50, 90])
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.625, 0.325])
    assert "%" in ax.get_xlabel() and "singular value" in ax.get_ylabel()
    with pytest.raises(ValueError, match="missing columns"):
        plotting.figure2_signal(pd.DataFrame(rows).drop(columns="sparsity"))


def test_training_curves_average_seeds_per_line():
    hist = pd.DataFrame(
        {
            "iteration": [0, 10, 0, 10],
            "arch": ["VGG16"] * 4,
            "init": ["LDI"] * 4,
            "seed": [0, 0, 1, 1],
            "train_loss": [2.0, 1.0, 2.2, 0.6],
            "test_error": [90.0, 50.0, 80.0, 40.0],
        }
    )
    fig = plotting.training_curves(hist, panel="arch", hue="init")
    loss_ax, err_ax = fig.get_axes()[:2]
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), [2.1, 0.8])
    np.testing.assert_allclose(err_ax.get_lines()[0].get_ydata(), [85.0, 45.0])
    assert err_ax.get_ylabel() == "test error (%)"


def test_table5_curves_are_labelled_as_in_the_paper():
    h = pd.DataFrame(
        {
            "iteration": [10, 20] * 3,
            "train_loss": [2.0, 1.5] * 3,
            "test_error": [50.0, 40.0] * 3,
            "role": ["sup", "sup", "unsup", "unsup", "rand", "rand"],
            "prune": "fashion-mnist",
            "train": "mnist",
            "seed": 0,
        }
    )
    ax = plotting.table_training_curves("table5", h).get_axes()[0]
    assert ax.get_title() == "F-MNIST → MNIST"
    assert [l.get_label() for l in ax.get_lines()] == [
        "CS, supervised",
        "CS, unsupervised (uniform)",
        "random",
    ]
    with pytest.raises(ValueError, match="allowed"):
        plotting.table_training_curves("table9", h)
