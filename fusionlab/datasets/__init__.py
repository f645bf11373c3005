"""Datasets: real CamVid, procedural SyntheticScenes, resizing and augmentation.

Boundaries and border targets from label maps live in ``fusionlab.boundaries``.
"""

from fusionlab.datasets.camvid import (CamVid, DataMisplacedError, DataNotFoundError,
                                       IMAGENET_MEAN, IMAGENET_STD)
from fusionlab.datasets.synthetic import SyntheticScenes

__all__ = ["CamVid", "SyntheticScenes", "DataNotFoundError", "DataMisplacedError",
           "IMAGENET_MEAN", "IMAGENET_STD"]
