"""Pictures and widgets for the book, one module per kind:

- ``style``: the column width, dots per inch and font size figures are made for
  (``FIGURE_WIDTH`` inches at ``FIGURE_DPI`` is a figure shown unscaled, so ``FONT_SIZE`` points
  read at that size); ``use_book_style`` sets Matplotlib up accordingly.
- ``maps``: label maps and feature maps as pictures, and rows of predictions.
- ``slider``: image sliders that keep working in the static HTML page.
- ``results``: training losses, ablations, learning curves, Pareto fronts, scores per output.
- ``classes``: per-class frequencies, values, heat maps and gains.
- ``modules``: looking inside the papers' modules (losses, attention, fusion shares, the label
  space and the temperature, DAP's votes).

Everything is importable from ``fusionlab.viz`` itself.
"""

from fusionlab.viz.style import (FIGURE_WIDTH, FIGURE_DPI, FONT_SIZE, METRIC_LABELS,
                                 use_book_style, figure_image, show_source)
from fusionlab.viz.maps import (colorize, overlay, error_map, class_legend, top_channels,
                                feature_grid, map_panels, prediction_rows)
from fusionlab.viz.slider import (png_bytes, ImageSlider, image_slider)
from fusionlab.viz.results import (plot_history, plot_fusion_levels, plot_ablation,
                                   plot_ablation_panels, plot_fusion_level_panels,
                                   plot_learning_curves, plot_pareto, plot_output_scores)
from fusionlab.viz.classes import (plot_class_frequencies, plot_class_heatmap, plot_class_gains,
                                   plot_class_bars, plot_class_gain_bars)
from fusionlab.viz.modules import (plot_loss_responses, plot_channel_weights,
                                   plot_explained_variance, plot_temperature, plot_miou_star,
                                   plot_dap_votes, plot_shares)

__all__ = ["FIGURE_WIDTH", "FIGURE_DPI", "FONT_SIZE", "METRIC_LABELS", "use_book_style",
           "figure_image", "show_source", "colorize", "overlay", "error_map", "class_legend",
           "top_channels", "feature_grid", "map_panels", "prediction_rows", "png_bytes",
           "ImageSlider", "image_slider", "plot_history", "plot_fusion_levels", "plot_ablation",
           "plot_ablation_panels", "plot_fusion_level_panels", "plot_learning_curves",
           "plot_pareto", "plot_output_scores", "plot_class_frequencies", "plot_class_heatmap",
           "plot_class_gains", "plot_class_bars", "plot_class_gain_bars", "plot_loss_responses",
           "plot_channel_weights", "plot_explained_variance", "plot_temperature",
           "plot_miou_star", "plot_dap_votes", "plot_shares"]
