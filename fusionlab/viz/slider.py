"""Image sliders that keep working in the static HTML page: precomputed views switched on the
client, with the first view as a picture for readers without JavaScript."""

from __future__ import annotations

import base64
import html
from typing import Sequence

import cv2
import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> PNG file bytes."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return buf.tobytes()


class ImageSlider:
    """A slider over precomputed images, as displayed by ``image_slider``.

    Displaying it shows the widget and, for readers without JavaScript, its first view as a
    plain picture inside ``<noscript>`` (hidden wherever the widget can run).

    Attributes:
        widget: the ipywidgets ``VBox`` (slider, caption, images).
        fallback_html: the ``<noscript>`` picture of the first view.
    """

    def __init__(self, widget, fallback_html: str):
        self.widget = widget
        self.fallback_html = fallback_html

    def _ipython_display_(self):
        from IPython.display import HTML, display

        display(HTML(self.fallback_html))
        display(self.widget)


def image_slider(images: Sequence[np.ndarray], captions: Sequence[str], description: str = "",
                 width: int | None = None) -> ImageSlider:
    """A slider that flips between precomputed images, working in the static HTML book.

    The slider's value is ``jslink``-ed to the ``selected_index`` of two ``Stack`` widgets (the
    images and their captions), so the switch happens in the browser without a kernel. Make
    the images at ``FIGURE_WIDTH`` (e.g. with ``figure_image``) to show them unscaled.

    Args:
        images: RGB uint8 images (H, W, 3), one per view.
        captions: one text per view.
        description: the slider's label.
        width: display width in pixels (default: the image's own).

    Raises:
        ValueError: ``images`` and ``captions`` of different lengths, or none.
    """
    import ipywidgets as widgets

    if len(images) != len(captions) or not images:
        raise ValueError(f"need one caption per image, got {len(images)} images and "
                         f"{len(captions)} captions")
    layout = {"width": f"{width}px"} if width else {}
    pictures = widgets.Stack([widgets.Image(value=png_bytes(im), format="png", layout=layout)
                              for im in images], selected_index=0)
    texts = widgets.Stack([widgets.HTML(f"<b>{html.escape(c)}</b>") for c in captions],
                          selected_index=0)
    slider = widgets.IntSlider(0, 0, len(images) - 1, description=description,
                               readout=False, continuous_update=True)
    widgets.jslink((slider, "value"), (pictures, "selected_index"))
    widgets.jslink((slider, "value"), (texts, "selected_index"))
    first = base64.b64encode(png_bytes(images[0])).decode("ascii")
    fallback = (f'<noscript><figure class="slider-fallback"><img alt="{html.escape(captions[0])}"'
                f' src="data:image/png;base64,{first}"/><figcaption>{html.escape(captions[0])} '
                f"(first of {len(images)} views; the slider needs JavaScript)</figcaption>"
                f"</figure></noscript>")
    return ImageSlider(widgets.VBox([widgets.HBox([slider, texts]), pictures]), fallback)
