"""The book's pictures: error maps, class legends, sliders with a picture for readers without
JavaScript, and figures at the column's width."""

import base64
import itertools
import re

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import pytest  # noqa: E402

from fusionlab import IGNORE_INDEX, viz  # noqa: E402

PALETTE = np.array([[255, 0, 0], [0, 128, 0], [0, 0, 255]], np.uint8)
CLASSES = ["red", "green", "blue"]


def test_error_map_marks_wrong_right_and_ignored_pixels():
    target = np.array([[0, 1], [2, IGNORE_INDEX]])
    prediction = np.array([[0, 2], [2, 1]])
    out = viz.error_map(prediction, target)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [225, 225, 225]      # right
    assert out[0, 1].tolist() == [214, 39, 40]        # wrong
    assert out[1, 0].tolist() == [225, 225, 225]
    assert out[1, 1].tolist() == [0, 0, 0]            # ignored: neither right nor wrong


def test_error_map_rejects_maps_of_different_shapes():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        viz.error_map(np.zeros((2, 2)), np.zeros((2, 3)))


def test_class_legend_has_one_entry_per_class_in_its_colour():
    fig, ax = plt.subplots()
    legend = viz.class_legend(fig, CLASSES, PALETTE)
    assert [t.get_text() for t in legend.get_texts()] == CLASSES
    colours = [h.get_facecolor()[:3] for h in legend.legend_handles]
    np.testing.assert_allclose(colours, PALETTE / 255)
    with pytest.raises(ValueError, match="3 classes and 2 colours"):
        viz.class_legend(ax, CLASSES, PALETTE[:2])
    plt.close(fig)


def test_image_slider_links_every_view_and_falls_back_to_the_first():
    images = [np.full((4, 6, 3), v, np.uint8) for v in (10, 120, 240)]
    images[0][1, 2] = (1, 2, 3)   # make the first view distinguishable pixel by pixel
    slider = viz.image_slider(images, ["a", "b <c>", "d"], description="level")
    (controls, pictures) = slider.widget.children
    bar, texts = controls.children
    assert (bar.min, bar.max, bar.value) == (0, 2, 0)
    assert len(pictures.children) == 3 and len(texts.children) == 3
    shown = [cv2.imdecode(np.frombuffer(p.value, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
             for p in pictures.children]
    for got, want in zip(shown, images):
        np.testing.assert_array_equal(got, want)
    assert "b &lt;c&gt;" in texts.children[1].value
    html = slider.fallback_html
    assert html.startswith("<noscript>") and html.endswith("</noscript>")
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    first = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(first[..., ::-1], images[0])


def test_image_slider_needs_one_caption_per_image():
    with pytest.raises(ValueError, match="2 images and 1 captions"):
        viz.image_slider([np.zeros((2, 2, 3), np.uint8)] * 2, ["only one"])


def test_book_style_makes_figures_of_the_column_width_with_legible_text():
    with matplotlib.rc_context():
        viz.use_book_style()
        fig = plt.figure()
        assert fig.get_size_inches()[0] * fig.dpi == viz.FIGURE_WIDTH * viz.FIGURE_DPI
        assert min(matplotlib.rcParams[k] for k in ("font.size", "xtick.labelsize",
                                                    "ytick.labelsize", "legend.fontsize")) >= 9
        plt.close(fig)


@pytest.mark.parametrize("errors", [False, True])
def test_prediction_rows_fit_the_column(errors):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (12, 16, 3), dtype=np.uint8) for _ in range(2)]
    targets = [rng.integers(0, 3, (12, 16)) for _ in range(2)]
    predictions = {"A": targets, "B": [t[::-1] for t in targets]}
    fig = viz.prediction_rows(images, targets, predictions, PALETTE, classes=CLASSES,
                              errors=errors)
    assert fig.get_size_inches()[0] == pytest.approx(viz.FIGURE_WIDTH)
    cols = 2 + 2 * (2 if errors else 1)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * cols
    titles = [ax.get_title() for ax in fig.axes[:cols]]
    assert titles[:3] == ["image", "labels", "A"]
    assert ("A: errors" in titles) == errors
    assert [t.get_text() for t in fig.legends[0].get_texts()] == CLASSES
    plt.close(fig)


def test_prediction_rows_titles_do_not_run_into_each_other():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (12, 16))
    names = ["SS head c2", "SS head c5", "ECRE (stride 16)", "ExFuse output", "a", "b"]
    fig = viz.prediction_rows([np.zeros((12, 16, 3), np.uint8)], [target],
                              {n: [target] for n in names}, PALETTE)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    assert " ".join(fig.axes[4].get_title().split()) == "ECRE (stride 16)"
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    plt.close(fig)


def test_top_channels_are_the_most_active_each_scaled_to_unit_range():
    f = torch.zeros(4, 3, 5)
    f[1] = torch.linspace(-2, 2, 15).view(3, 5)   # mean |x| 1.14: the most active
    f[3] = 0.5 * torch.arange(15.0).view(3, 5) / 14   # mean |x| 0.25
    f[0, 0, 0] = 1.0                               # mean |x| 0.07
    order, maps = viz.top_channels(f, n=2)
    assert order == [1, 3]
    np.testing.assert_allclose(maps[0], (f[1].numpy() + 2) / 4, atol=1e-6)
    np.testing.assert_allclose(maps[1], np.arange(15.0).reshape(3, 5) / 14, atol=1e-6)


def test_map_panels_share_one_scale_per_group():
    a, b = np.zeros((4, 4)), np.full((4, 4), 3.0)
    b[0, 0] = -1.0
    rgb = np.zeros((4, 4, 3), np.uint8)
    fig = viz.map_panels([("image", rgb, None), ("a", a, "x"), ("b", b, "x"), ("m", a - 2, "s")],
                         {"x": {"label": "x"}, "s": {"cmap": "coolwarm", "symmetric": True}})
    images = {ax.get_title(): ax.images[0] for ax in fig.axes if ax.get_title()}
    assert images["a"].get_clim() == images["b"].get_clim() == (-1.0, 3.0)
    assert images["m"].get_clim() == (-2.0, 2.0)
    assert len(fig.axes) == 4 + 2   # four panels, one colourbar per group
    with pytest.raises(ValueError, match=r"no scale for groups \['y'\]"):
        viz.map_panels([("a", a, "y")])
    plt.close("all")


def test_map_panels_colourbars_of_interleaved_groups_do_not_overlap():
    # as in the SEB view: strengths first and last, masks in between, on a 2 x 3 grid
    m = np.linspace(-1, 1, 16).reshape(4, 4)
    panels = [("image", np.zeros((4, 4, 3), np.uint8), None), ("|x|", abs(m), "strength")]
    panels += [(f"mask {i}", m * i, "mask") for i in (1, 2, 3)]
    panels.append(("|x| after", m ** 2, "strength"))
    fig = viz.map_panels(panels, {"strength": {"label": "strength"},
                                  "mask": {"cmap": "coolwarm", "symmetric": True,
                                           "label": "mask"}}, ncols=3, height=3.6)
    fig.canvas.draw()
    bars = [ax for ax in fig.axes if ax.get_ylabel() in ("strength", "mask")]
    assert len(bars) == 2
    assert not bars[0].get_position().overlaps(bars[1].get_position())
    panel_boxes = [ax.get_position() for ax in fig.axes if ax.get_title()]
    for bar in bars:
        assert not any(bar.get_position().overlaps(box) for box in panel_boxes)
    assert fig.get_size_inches()[0] == pytest.approx(viz.FIGURE_WIDTH)


def test_pareto_plot_joins_only_the_models_no_other_beats():
    points = {"cheap": (1.0, 50.0, 48.0, 52.0), "dominated": (2.0, 49.0, 47.0, 51.0),
              "best": (3.0, 60.0, 58.0, 62.0), "one seed": (4.0, 55.0, np.nan, np.nan)}
    ax = viz.plot_pareto(points, "GFLOPs")
    front = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(front) == 1
    assert list(front[0].get_xdata()) == [1.0, 3.0] and list(front[0].get_ydata()) == [50.0, 60.0]
    assert ax.get_xlabel() == "GFLOPs"
    plt.close(ax.figure)


def test_class_gain_heat_map_shows_points_and_marks_thin_classes():
    gains = {"A": np.array([0.02, -0.05]), "B": np.array([np.nan, 0.10])}
    ax = viz.plot_class_gains(gains, ["Road", "Pole"], ["Pole"], base="FPN")
    shown = ax.images[0].get_array()
    assert shown[0].tolist() == pytest.approx([2.0, -5.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Road", "Pole*"]
    assert sorted(t.get_text() for t in ax.texts) == ["+10", "+2", "-5"]  # NaN left blank
    assert ax.images[0].get_clim() == (-10.0, 10.0)  # one symmetric scale
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="empty"):
        viz.plot_class_gains({}, ["Road", "Pole"])


def test_ablation_panels_stack_one_metric_each_on_a_shared_axis():
    runs = [{"variant": v, "seed": s, "miou": m, "thin_iou": m / 2, "boundary_f": m / 3}
            for v, s, m in [("a", 0, 0.4), ("a", 1, 0.5), ("b", 0, 0.6), ("b", 1, 0.7)]]
    summary = {v: {k: {"mean": float(np.mean([r[k] for r in runs if r["variant"] == v])),
                       "std": 0.0} for k in ("miou", "thin_iou", "boundary_f")}
               for v in ("a", "b")}
    fig = viz.plot_ablation_panels({"runs": runs, "summary": summary}, ["b", "a", "c"], "t")
    assert len(fig.axes) == 3 and fig._suptitle.get_text() == "t"
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["b", "a"]  # c not run
    means = fig.axes[0].lines[0].get_ydata()                       # the mIoU panel first
    assert list(means) == pytest.approx([0.65, 0.45])
    plt.close(fig)
    with pytest.raises(ValueError, match="metrics"):
        viz.plot_ablation_panels({"runs": runs, "summary": summary}, ["a"], "t", metrics=())


def test_class_gain_bars_show_the_mean_its_interval_and_each_seed():
    summary = {"gains": np.array([[0.02, 0.10], [0.04, np.nan]]), "mean": np.array([0.03, 0.10]),
               "low": np.array([0.01, np.nan]), "high": np.array([0.05, np.nan])}
    ax = viz.plot_class_gain_bars(summary, ["Road", "Pole"], ["Pole"], title="b minus a")
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx([3.0, 10.0])
    assert [b.get_hatch() for b in bars] == ["", "//"]
    whiskers = ax.containers[1]  # the errorbar container: one whisker, Pole's NaN interval none
    assert whiskers.lines[2][0].get_segments()[0][:, 1].tolist() == pytest.approx([1.0, 5.0])
    dots = [line for line in ax.get_lines() if line.get_marker() == "."]
    assert len(dots) == 2 and dots[0].get_ydata().tolist() == pytest.approx([2.0, 10.0])
    assert ax.get_title() == "b minus a (hatched: thin classes)"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match=r"\(seeds, 3\)"):
        viz.plot_class_gain_bars(summary, ["Road", "Pole", "Car"])
