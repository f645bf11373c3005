"""Module schematics of the book, drawn by code on one ``Diagram`` canvas: one file per
chapter, each function returning a Matplotlib figure of the column's width.

The canvas and chapter 1's baselines are importable from here; each paper's schematics from
its own module (``exfuse``, ``gff``, ``dfn``, ``dupsampling``), which a new paper adds without
touching this file.
"""

from fusionlab.schematics.baselines import schematic_baselines
from fusionlab.schematics.diagram import Diagram

__all__ = ["Diagram", "schematic_baselines"]
