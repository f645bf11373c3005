"""The module schematics: legible at the column's width, nothing overlapping, the labels each
module's figure must show."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402

from fusionlab import schematics, viz  # noqa: E402
from fusionlab.schematics import dfn, dupsampling, exfuse, gff  # noqa: E402

SCHEMATICS = {
    "baselines": (schematics.schematic_baselines, ["FCN: no fusion", "UNet: concatenate",
                                                   "FPN: add", "Up ×32", "two 3×3", "3×3 conv",
                                                   "C", "+"]),
    "gcn": (exfuse.schematic_gcn, ["k×1 conv", "1×k conv", "ReLU", "identity", "+"]),
    "seb": (exfuse.schematic_seb, ["×", "$x_3$ (stride 8)", "$x_5$ (stride 32)", "3×3 conv"]),
    "ecre": (exfuse.schematic_ecre, ["pixel shuffle r=2", "auxiliary loss vs. labels", "+"]),
    "dap": (lambda: exfuse.schematic_dap(3),
            ["1×1 conv → K·9", "(i, j)", "(0, 0)", "(2, 2)"]),
    "gffnet": (gff.schematic_gffnet, ["GFF", "DFP", "PPM on c5", "c2 (stride 4)",
                                      "aux head on c4\n(weight 0.4)"]),
    "gff": (gff.schematic_gff, [r"$(1 + G_2)\,X_2$", r"$(1 - G_2)\,\Sigma$", "Up", "+"]),
    "dfp": (gff.schematic_dfp, ["C", "3×3 conv → C", "PPM context", "$D_5$"]),
    "rrb": (dfn.schematic_rrb, ["1×1 conv → C", "BN", "ReLU", "+", "identity: $x'$"]),
    "cab": (dfn.schematic_cab, ["GAP", "sigmoid", "C", "×", "+", "Up(high)", "w: (N, C)"]),
    "smooth_network": (dfn.schematic_smooth_network, ["GP: pool + 1×1 conv", "CAB", "RRB",
                                                      "stage_c5: CE, weight 1",
                                                      "the prediction (test time)"]),
    "border_network": (dfn.schematic_border_network, ["RRB", "+", "1×1 head → 1",
                                                      "border_c2: λ × focal", "c2 (stride 4)"]),
    "label_compression": (dupsampling.schematic_label_compression,
                          ["r×r label patch", "one-hot, flatten (c, dy, dx)", r"$P = W^\top$",
                           "× W, + mean", "pixel shuffle r"]),
    "dupsampling_head": (dupsampling.schematic_dupsampling_head,
                         ["W f + mean (fixed)", "z / T (T learned)", "softmax, CE"]),
    "flexible_aggregation": (dupsampling.schematic_flexible_aggregation,
                             ["Up ×4", "avg pool ÷4, 1×1", "two 3×3 at H/16", "C"]),
}


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


@pytest.mark.parametrize("name", SCHEMATICS)
def test_schematic_is_legible_and_nothing_overlaps(name):
    make, expected = SCHEMATICS[name]
    fig = make()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    width, height = fig.get_size_inches()
    assert width <= viz.FIGURE_WIDTH
    texts = [t for t in ax.texts if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 9
    labels = [t.get_text() for t in texts]
    for label in expected:
        assert label in labels, (label, labels)
    page = fig.bbox
    for t in texts:   # every text is inside the figure
        e = _extent(t, renderer)
        assert e.x0 >= page.x0 - 1 and e.x1 <= page.x1 + 1, t.get_text()
        assert e.y0 >= page.y0 - 1 and e.y1 <= page.y1 + 1, t.get_text()
    for a, b in itertools.combinations(texts, 2):   # no text runs into another
        assert not _extent(a, renderer).overlaps(_extent(b, renderer)), (a.get_text(),
                                                                         b.get_text())
    nodes = [p for p in ax.patches if isinstance(p, (FancyBboxPatch, Circle))]
    for a, b in itertools.combinations(nodes, 2):   # no box runs into another
        assert not _extent(a, renderer).overlaps(_extent(b, renderer))
    for box in (p for p in nodes if isinstance(p, FancyBboxPatch)):   # text fits its box
        outline = _extent(box, renderer)
        inside = [t for t in texts if outline.contains(*ax.transData.transform(t.get_position()))]
        assert len(inside) == 1
        e = _extent(inside[0], renderer)
        assert outline.x0 <= e.x0 and e.x1 <= outline.x1, inside[0].get_text()
    plt.close(fig)


def test_dap_schematic_needs_an_odd_window():
    with pytest.raises(ValueError, match="odd"):
        exfuse.schematic_dap(2)


def test_diagram_rejects_bad_use():
    d = schematics.Diagram(3, 1)
    d.box("a", 0.5, 0.5, "a")
    with pytest.raises(ValueError, match="exists already"):
        d.box("a", 1.5, 0.5, "again")
    with pytest.raises(ValueError, match=r"unknown diagram node\(s\) \['b'\]"):
        d.arrow("a", "b")
    with pytest.raises(ValueError, match="role"):
        d.box("c", 2, 0.5, "c", role="cloud")
    with pytest.raises(ValueError, match="at most 7.0 in wide"):
        schematics.Diagram(viz.FIGURE_WIDTH + 1, 1)
    plt.close("all")
