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


def test_class_heat_map_writes_each_cell_and_darkens_its_text_on_the_low_half():
    values = np.array([[0.1, np.nan, 0.9], [0.5, 0.2, 0.7]])
    ax = viz.plot_class_heatmap(values, ["c2", "c3"], CLASSES, ["blue"], "mean gate",
                                limits=(0, 1))
    assert ax.images[0].get_clim() == (0, 1)
    texts = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    assert len(texts) == 5                                       # NaN left blank
    assert texts[((0, 0), "0.10")] == "white" and texts[((2, 0), "0.90")] == "black"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["red", "green", "blue*"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c2", "c3"]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        viz.plot_class_heatmap(values[:, :2], ["c2", "c3"], CLASSES)


def test_class_bars_leave_out_absent_classes_and_group_several_series():
    ax = viz.plot_class_bars({"one": np.array([0.2, np.nan, 0.5])}, CLASSES, PALETTE)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["red", "blue"]
    assert [b.get_height() for b in ax.patches] == pytest.approx([0.2, 0.5])
    assert ax.patches[1].get_facecolor()[:3] == pytest.approx((0, 0, 1))   # the class colour
    plt.close(ax.figure)
    ax = viz.plot_class_bars({"a": np.array([0.1, 0.2, 0.3]), "b": np.array([0.3, 0.2, 0.1])},
                             CLASSES)
    assert len(ax.patches) == 6 and ax.get_legend() is not None
    assert ax.patches[0].get_x() < ax.patches[3].get_x() < ax.patches[1].get_x()  # side by side
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="one per class"):
        viz.plot_class_bars({"a": np.zeros(2)}, CLASSES)
    with pytest.raises(ValueError, match="empty"):
        viz.plot_class_bars({}, CLASSES)


def test_shares_stack_to_one_per_row():
    shares = np.array([[0.5, 0.25, 0.25], [0.1, 0.0, 0.9]])
    ax = viz.plot_shares(shares, ["x", "y"], ["own", "p", "q"])
    lefts = [b.get_x() for b in ax.patches]
    widths = [b.get_width() for b in ax.patches]
    assert widths == pytest.approx([0.5, 0.1, 0.25, 0.0, 0.25, 0.9])     # part by part
    assert lefts == pytest.approx([0, 0, 0.5, 0.1, 0.75, 0.1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["own", "p", "q"]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="sum to 1"):
        viz.plot_shares(shares * 2, ["x", "y"], ["own", "p", "q"])
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        viz.plot_shares(shares, ["x", "y"], ["own", "p"])


def test_output_scores_draw_each_output_per_metric():
    per_output = {"main": {"miou": 0.5, "boundary_f": 0.3},
                  "aux": {"miou": 0.2, "boundary_f": 0.1}}
    fig = viz.plot_output_scores(per_output, {"head": "aux", "output": "main"},
                                 ("miou", "boundary_f"))
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx([0.2, 0.5])
    assert [b.get_height() for b in fig.axes[1].patches] == pytest.approx([0.1, 0.3])
    assert fig.axes[1].get_ylabel() == "validation boundary F"
    plt.close(fig)
    with pytest.raises(KeyError, match="stage_c5"):
        viz.plot_output_scores(per_output, {"c5": "stage_c5"})


def test_channel_weights_sort_the_channels_by_their_mean():
    w = np.array([[0.1, 0.9, 0.5], [0.3, 0.7, 0.5]])
    fig = viz.plot_channel_weights({"CAB of c2": w, "CAB of c3": w[:, ::-1]})
    shown = fig.axes[0].images[0].get_array()
    assert np.asarray(shown) == pytest.approx(np.array([[0.9, 0.5, 0.1], [0.7, 0.5, 0.3]]))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["CAB of c2", "CAB of c3"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(n, C\)"):
        viz.plot_channel_weights({"x": np.zeros(3)})


def test_loss_responses_draw_a_column_per_loss_and_a_line_per_target():
    logits = np.linspace(-1, 1, 5)
    curves = {"a": {0: (logits ** 2, 2 * logits), 1: (-logits, -np.ones(5))}, "b": {
        1: (logits, np.ones(5))}}
    fig = viz.plot_loss_responses(logits, curves)
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b"]
    assert len(axes[0, 0].get_lines()) == 3 and len(axes[0, 1].get_lines()) == 2   # + y = 0
    assert axes[1, 0].get_lines()[0].get_ydata().tolist() == pytest.approx(2 * logits)
    plt.close(fig)


def test_miou_star_and_explained_variance_plots_draw_every_fit():
    star = {(True, 8, 4): 0.9, (True, 8, 16): 0.95, (False, 8, 4): 0.8, (False, 8, 16): 0.9,
            ("bilinear", 8): 0.85, (True, 16, 4): 0.7, (True, 16, 16): 0.8, ("bilinear", 16): 0.6}
    ax = viz.plot_miou_star(star)
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 2
             and line.get_xdata()[0] == 4]
    assert [line.get_ydata().tolist() for line in lines] == [[90, 95], [80, 90], [70, 80]]
    assert sorted(line.get_ydata()[0] for line in ax.get_lines()
                  if line.get_linestyle() == ":") == pytest.approx([60, 85])
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="nothing to draw"):
        viz.plot_miou_star({("bilinear", 8): 0.5})
    ax = viz.plot_explained_variance({"r = 8": np.array([0.5, 0.3, 0.2])}, {"C": 2})
    assert ax.get_lines()[0].get_ydata().tolist() == pytest.approx([50, 80, 100])
    assert ax.get_lines()[1].get_xdata()[0] == 2
    plt.close(ax.figure)
    ax = viz.plot_temperature([1.0, 0.8, 0.7], [1.0, 0.5, 0.25])
    learned, bound = ax.get_lines()
    assert learned.get_xdata().tolist() == [1, 2, 3] and bound.get_ydata().tolist() == [1, .5, .25]
    assert learned.get_ydata().tolist() == [1.0, 0.8, 0.7] and bound.get_linestyle() == "--"
    plt.close(ax.figure)
    assert len(viz.plot_temperature([1.0]).get_lines()) == 1
    with pytest.raises(ValueError, match="3 steps, got 2"):
        viz.plot_temperature([1.0, 0.8, 0.7], [1.0, 0.5])
    plt.close("all")


def test_dap_votes_show_the_window_the_votes_and_their_mean():
    votes = torch.zeros(3, 3, 3)
    votes[..., 2] = torch.arange(9.0).view(3, 3)                  # votes for class 2
    labels = torch.full((4, 5), 2)
    fig = viz.plot_dap_votes(np.zeros((16, 20, 3), np.uint8), labels, votes, (1, 2), CLASSES,
                             PALETTE)
    written = sorted(float(t.get_text()) for t in fig.axes[1].texts)
    assert written == list(range(9))
    assert [b.get_height() for b in fig.axes[2].patches] == pytest.approx([0, 0, 4])
    box = fig.axes[0].patches[0]
    assert (box.get_x(), box.get_y(), box.get_width()) == (3.5, -0.5, 12)   # 3 x 3 cells of 4
    plt.close(fig)
    with pytest.raises(ValueError, match="outside|inside"):
        viz.plot_dap_votes(np.zeros((16, 20, 3), np.uint8), labels, votes, (4, 0), CLASSES,
                           PALETTE)


def test_fusion_level_panels_keep_one_legend_and_one_axis_label():
    summary = {n: {m: {"mean": 0.5, "std": 0.0} for m in ("miou", "thin_iou", "boundary_f")}
               for n in ("c5", "FPN c4-c5", "UNet c4-c5")}
    fig = viz.plot_fusion_level_panels({"summary": summary}, "t")
    assert [ax.get_legend() is not None for ax in fig.axes] == [True, False, False]
    assert [ax.get_xlabel() for ax in fig.axes] == ["", "", "fused levels"]
    plt.close(fig)


def test_prediction_rows_take_a_batch_of_model_inputs_and_histories_several_runs():
    from fusionlab.datasets.base import denormalise
    images = torch.randn(2, 3, 8, 10)
    masks = torch.randint(0, 3, (2, 8, 10))
    fig = viz.prediction_rows(images, masks, {"A": masks}, PALETTE)
    assert fig.axes[0].images[0].get_array().tolist() == denormalise(images[0]).tolist()
    plt.close(fig)
    runs = [[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}],
            [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 1.5}]]
    ax = viz.plot_history({"two seeds": runs, "one run": runs[0]})
    assert len(ax.get_lines()) == 3
    assert ax.get_lines()[0].get_color() == ax.get_lines()[1].get_color()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["two seeds", "one run"]
    plt.close(ax.figure)
