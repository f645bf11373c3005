"""Module schematics of the book, drawn by code on one ``Diagram`` canvas: one file per
chapter, each function returning a Matplotlib figure of the column's width."""

from fusionlab.schematics.baselines import schematic_baselines
from fusionlab.schematics.diagram import Diagram
from fusionlab.schematics.exfuse import schematic_dap, schematic_ecre, schematic_gcn, schematic_seb

__all__ = ["Diagram", "schematic_baselines", "schematic_gcn", "schematic_seb", "schematic_ecre",
           "schematic_dap"]
