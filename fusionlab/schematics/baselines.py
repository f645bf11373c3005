"""Schematic of chapter 1: the three classic decoders."""

from __future__ import annotations

from fusionlab.schematics.diagram import Diagram
from fusionlab.viz import FIGURE_WIDTH, FONT_SIZE


def schematic_baselines():
    """The three classic decoders side by side: FCN (no fusion), UNet (concatenation), FPN
    (addition), each fed by the encoder stages c2..c5 (strides 4..32).

    Sources: Long et al., CVPR 2015 (FCN-32s); Ronneberger et al., MICCAI 2015; Lin et al.,
    CVPR 2017. Drawn as fusionlab builds them (``FCN``, ``UNet``, ``FPN``): bilinear ``Up``.
    """
    d = Diagram(FIGURE_WIDTH, 3.6)
    rows = {"c5": 2.75, "c4": 2.1, "c3": 1.45, "c2": 0.8}
    for p, (name, title) in enumerate((("fcn", "FCN: no fusion"),
                                       ("unet", "UNet: concatenate"), ("fpn", "FPN: add"))):
        x0 = p * FIGURE_WIDTH / 3
        d.text(x0 + 1.15, 3.35, title, size=FONT_SIZE, weight="bold")
        for lv, y in rows.items():
            used = name != "fcn" or lv == "c5"
            d.box(f"{name}{lv}", x0 + 0.3, y, lv, role="feature" if used else "muted")
        d.box(f"{name}out", x0 + 1.45, 0.22, "head, Up → logits", role="output")
        if name == "fcn":
            d.box("fcnhead", x0 + 1.45, rows["c5"], "1×1 conv", min_width=0.9)
            d.box("fcnup", x0 + 1.45, 1.45, "Up ×32", min_width=0.9)
            d.arrow("fcnc5", "fcnhead")
            d.arrow("fcnhead", "fcnup")
            d.arrow("fcnup", "fcnout")
            continue
        d.box(f"{name}d5", x0 + 1.75, rows["c5"], "3×3 conv")
        d.arrow(f"{name}c5", f"{name}d5")
        above = f"{name}d5"
        for lv in ("c4", "c3", "c2"):
            y = rows[lv]
            d.op(f"{name}op{lv}", x0 + 1.0, y, "+" if name == "fpn" else "C")
            d.arrow(f"{name}{lv}", f"{name}op{lv}", label="1×1" if name == "fpn" else None)
            d.box(f"{name}d{lv}", x0 + 1.75, y, "3×3 conv" if name == "fpn" else "two 3×3")
            d.arrow(above, f"{name}op{lv}", label="Up" if lv == "c4" else None)
            d.arrow(f"{name}op{lv}", f"{name}d{lv}")
            above = f"{name}d{lv}"
        d.arrow(above, f"{name}out")
    return d.fig
