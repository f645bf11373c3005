"""Every chapter's experiments, one file per paper: its variants, the paper's own numbers and
its model builders (``MODELS``) and its ``CHAPTER``. A new paper adds its module to
``MODULES``, the one list the command line, the builder table, the book's tests and the intro's
table read."""

from fusionlab.experiments.ablations import (dfn, dupsampling, exfuse, fusion_levels, gff,
                                             head_to_head)
from fusionlab.experiments.spec import Chapter, Experiment

MODULES = (fusion_levels, exfuse, gff, dfn, dupsampling, head_to_head)
"""One module per chapter, in the book's order: its ``CHAPTER``, experiments and ``MODELS``."""

CHAPTERS: tuple[Chapter, ...] = tuple(module.CHAPTER for module in MODULES)
"""The book's chapters in order."""

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for chapter in CHAPTERS for e in chapter.experiments}
"""Experiment name -> ``Experiment``; the command line's ``experiment run NAME``."""

__all__ = ["MODULES", "CHAPTERS", "EXPERIMENTS"]
