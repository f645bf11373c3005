"""Segmentation models: the encoder -> decoder -> head contract and the papers' models."""

from fusionlab.models.base import SegmentationModel, SegOutput
from fusionlab.models.baselines import FCN, FPN, AddFusion, ConcatFusion, TopDownDecoder, UNet

__all__ = ["SegOutput", "SegmentationModel", "FCN", "FPN", "UNet", "TopDownDecoder",
           "AddFusion", "ConcatFusion"]
