"""Segmentation models: the encoder -> decoder -> head contract and every paper's models (one
module per paper; the book's chapters name theirs in ``fusionlab.experiments.ablations``)."""

from fusionlab.models.base import SegmentationModel, SegOutput
from fusionlab.models.baselines import FCN, FPN, AddFusion, ConcatFusion, TopDownDecoder, UNet
from fusionlab.models.dfn import (DFN, BorderNetwork, ChannelAttentionBlock, GlobalContext,
                                  RefinementResidualBlock, SmoothNetwork)
from fusionlab.models.dupsampling import (AdaptiveTemperature, DUpsampling, DUpsamplingNet,
                                          dupsampling_head)
from fusionlab.models.exfuse import (ECRE, DenselyAdjacentPrediction, ExFuse,
                                     SemanticEmbeddingBranch, SemanticSupervisionHead,
                                     layer_rearrangement)
from fusionlab.models.gcn import GCN, BoundaryRefinement, GlobalConvBlock
from fusionlab.models.gff import DenseFeaturePyramid, GatedFullyFusion, GFFNet, PyramidPooling
from fusionlab.models.label_space import LabelProjection, fit_label_projection

__all__ = ["SegOutput", "SegmentationModel", "FCN", "FPN", "UNet", "TopDownDecoder",
           "AddFusion", "ConcatFusion", "GCN", "GlobalConvBlock", "BoundaryRefinement",
           "ExFuse", "SemanticEmbeddingBranch", "SemanticSupervisionHead", "ECRE",
           "DenselyAdjacentPrediction", "layer_rearrangement", "GFFNet", "GatedFullyFusion",
           "PyramidPooling", "DenseFeaturePyramid", "DFN", "RefinementResidualBlock",
           "ChannelAttentionBlock", "GlobalContext", "SmoothNetwork", "BorderNetwork",
           "DUpsamplingNet", "DUpsampling", "AdaptiveTemperature", "LabelProjection",
           "dupsampling_head", "fit_label_projection"]
