"""Segmentation models: the encoder -> decoder -> head contract and the papers' models."""

from fusionlab.models.base import SegmentationModel, SegOutput
from fusionlab.models.baselines import FCN, FPN, AddFusion, ConcatFusion, TopDownDecoder, UNet
from fusionlab.models.exfuse import (ECRE, DenselyAdjacentPrediction, ExFuse,
                                     SemanticEmbeddingBranch, SemanticSupervisionHead,
                                     layer_rearrangement)
from fusionlab.models.gcn import GCN, BoundaryRefinement, GlobalConvBlock

__all__ = ["SegOutput", "SegmentationModel", "FCN", "FPN", "UNet", "TopDownDecoder",
           "AddFusion", "ConcatFusion", "GCN", "GlobalConvBlock", "BoundaryRefinement",
           "ExFuse", "SemanticEmbeddingBranch", "SemanticSupervisionHead", "ECRE",
           "DenselyAdjacentPrediction", "layer_rearrangement"]
