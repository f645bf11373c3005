"""Module schematics of the book, drawn by code on one ``Diagram`` canvas: one file per
chapter, each function returning a Matplotlib figure of the column's width."""

from fusionlab.schematics.baselines import schematic_baselines
from fusionlab.schematics.dfn import (schematic_border_network, schematic_cab, schematic_rrb,
                                      schematic_smooth_network)
from fusionlab.schematics.diagram import Diagram
from fusionlab.schematics.dupsampling import (schematic_dupsampling_head,
                                              schematic_flexible_aggregation,
                                              schematic_label_compression)
from fusionlab.schematics.exfuse import schematic_dap, schematic_ecre, schematic_gcn, schematic_seb
from fusionlab.schematics.gff import schematic_dfp, schematic_gff, schematic_gffnet

__all__ = ["Diagram", "schematic_baselines", "schematic_gcn", "schematic_seb", "schematic_ecre",
           "schematic_dap", "schematic_gffnet", "schematic_gff", "schematic_dfp",
           "schematic_rrb", "schematic_cab", "schematic_smooth_network",
           "schematic_border_network", "schematic_label_compression",
           "schematic_dupsampling_head", "schematic_flexible_aggregation"]
