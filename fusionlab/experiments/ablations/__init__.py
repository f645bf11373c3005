"""Every experiment of the book, one file per paper: its variants and the paper's own numbers."""

from fusionlab.experiments.ablations import dfn, dupsampling, exfuse, gff
from fusionlab.experiments.spec import Experiment

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (exfuse.FUSION_LEVELS, exfuse.EXFUSE, gff.GFF, dfn.EXPERIMENT,
                        dupsampling.DUPSAMPLING)}
"""Experiment name -> ``Experiment``; the command line's ``experiment run NAME``."""

__all__ = ["EXPERIMENTS"]
