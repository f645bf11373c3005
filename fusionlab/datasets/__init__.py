"""Datasets: real CamVid, procedural SyntheticScenes, augmentation and border targets."""

from fusionlab.datasets.camvid import CamVid, DataNotFoundError, IMAGENET_MEAN, IMAGENET_STD
from fusionlab.datasets.synthetic import SyntheticScenes

__all__ = ["CamVid", "SyntheticScenes", "DataNotFoundError", "IMAGENET_MEAN", "IMAGENET_STD"]
