"""Segmentation models: the encoder -> decoder -> head contract (``base``) and the baselines
every chapter compares against (``baselines``: FCN, FPN, UNet and their fusions).

Each paper's models live in a module of their own, imported from there: ``gcn`` and ``exfuse``
(chapter 2), ``gff`` (chapter 3), ``dfn`` (chapter 4), ``dupsampling`` and ``label_space``
(chapter 5), ``composed`` (chapter 6); ``fusionlab.experiments.ablations`` names each
chapter's. A new paper adds its module and touches nothing here.
"""

from fusionlab.models.base import SegmentationModel, SegOutput
from fusionlab.models.baselines import FCN, FPN, AddFusion, ConcatFusion, TopDownDecoder, UNet

__all__ = ["SegOutput", "SegmentationModel", "FCN", "FPN", "UNet", "TopDownDecoder",
           "AddFusion", "ConcatFusion"]
