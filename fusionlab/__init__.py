"""fusionlab: multi-level feature fusion for semantic segmentation.

A small PyTorch library that implements the fusion modules of ExFuse, Gated Fully Fusion,
DFN and DUpsampling, with the data, training and evaluation code the companion book uses.
One file per idea: ``fusionlab.encoders`` (ResNet stages c2..c5), ``fusionlab.models``
(decoders and full models), ``fusionlab.losses``, ``fusionlab.metrics``,
``fusionlab.datasets``, ``fusionlab.train``, ``fusionlab.experiments``, ``fusionlab.viz``.
"""

__version__ = "0.1.0"

IGNORE_INDEX = 255
"""Label value excluded from losses and metrics (CamVid's void class is mapped to it)."""
