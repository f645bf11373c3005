"""Every chapter's experiments, one file per paper: its variants, the paper's own numbers and
its ``CHAPTER``. A new paper adds its module to ``CHAPTERS``, the one list the command line,
the book's tests and the intro's table read."""

from fusionlab.experiments.ablations import dfn, dupsampling, exfuse, fusion_levels, gff
from fusionlab.experiments.spec import Chapter, Experiment

CHAPTERS: tuple[Chapter, ...] = tuple(
    module.CHAPTER for module in (fusion_levels, exfuse, gff, dfn, dupsampling))
"""The book's chapters in order."""

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for chapter in CHAPTERS for e in chapter.experiments}
"""Experiment name -> ``Experiment``; the command line's ``experiment run NAME``."""

__all__ = ["CHAPTERS", "EXPERIMENTS"]
