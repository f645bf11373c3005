"""DFN (Yu et al., CVPR 2018) on our scale: the ladder of its Tables 2-3, its lambda sweep and
the official code's focal loss, with the paper's numbers (PASCAL VOC 2012 val, mIoU %)."""

from __future__ import annotations

from fractions import Fraction

from fusionlab.experiments.profiles import build_encoder
from fusionlab.experiments.spec import (BuildContext, Chapter, Experiment, ModelSpec, PaperNumber,
                                        Variant)
from fusionlab.models.base import SegmentationModel
from fusionlab.models.dfn import DFN

DFN_OPTIONS = {
    "rrb": "refinement residual blocks in the Smooth Network",
    "gp": "global average pooling branch on c5",
    "cab": "channel attention blocks (else fusion by addition)",
    "ds": "deep supervision: a prediction head on every stage",
    "border": "the Border Network (focal loss on its border heads)",
    "border_weight": "lambda, the border loss weight, e.g. border_weight=0.5 (default 0.1)",
    "focal": "border loss: focal=correct (default) or focal=official (the official code's)",
}
"""The options of ``build_dfn`` for the model table; every module is off unless named."""


def build_dfn(ctx: BuildContext, rrb: bool = False, gp: bool = False, cab: bool = False,
              ds: bool = False, border: bool = False, border_weight: float | str = 0.1,
              focal: str = "correct") -> SegmentationModel:
    """``DFN`` at the profile's encoder and decoder width, with the named modules switched on
    (none: the FCN-4-style baseline).

    ``border_weight`` may come from the command line as text (``"0.5"``).

    Raises:
        ValueError: a ``border_weight`` that is not a number; see ``DFN``.
        TypeError: see ``DFN``.
    """
    if isinstance(border_weight, str):
        try:
            border_weight = float(border_weight)
        except ValueError:
            raise ValueError(f"border_weight must be a number, got {border_weight!r}") from None
    return DFN(ctx.num_classes, build_encoder(ctx.profile), rrb=rrb, gp=gp, cab=cab,
               deep_supervision=ds, border=border, border_weight=border_weight, focal=focal,
               channels=ctx.profile.channels)


_SMOOTH = {"rrb": True, "gp": True, "cab": True, "ds": True}
_FULL = {**_SMOOTH, "border": True}
_TABLE2 = "DFN, Table 2, VOC 2012 val, ResNet-101"
_TABLE3 = "DFN, Table 3, VOC 2012 val, ResNet-101"
_SWEEP = "DFN, Sec. 4 (lambda sweep), VOC 2012 val"
LAMBDAS = (0.05, 0.5, 1.0)
"""The border weights of the sweep besides the paper's 0.1 (the ``DFN`` variant)."""
_PAPER_LAMBDA = {0.05: 78.86, 0.1: 79.67, 0.5: 79.13, 1.0: 78.04}

EXPERIMENT = Experiment(
    name="dfn",
    title="DFN's ablation (Tables 2-3, in the paper's order), lambda sweep, official focal loss",
    variants={
        "baseline": Variant("dfn"),
        "+RRB": Variant("dfn", {"rrb": True}),
        "+GP": Variant("dfn", {"rrb": True, "gp": True}),
        "+CAB": Variant("dfn", {"rrb": True, "gp": True, "cab": True}),
        "+DS (Smooth Network)": Variant("dfn", _SMOOTH),
        "DFN": Variant("dfn", _FULL),
        **{f"DFN, lambda {w}": Variant("dfn", {**_FULL, "border_weight": w}) for w in LAMBDAS},
        "DFN, official focal loss": Variant("dfn", {**_FULL, "focal": "official"}),
    },
    paper={
        "+RRB": PaperNumber(3.79, _TABLE2, base="baseline",
                            note="the paper's baseline is ResNet-101 upsampled directly: its "
                                 "gain also moves to the FCN-4 structure, ours is the RRB "
                                 "alone"),
        "+GP": PaperNumber(1.55, _TABLE2, base="+RRB"),
        "+CAB": PaperNumber(1.11, _TABLE2, base="+GP"),
        "+DS (Smooth Network)": PaperNumber(0.23, _TABLE2, base="+CAB",
                                            note="79.54 - 79.31"),
        "DFN": PaperNumber(0.13, _TABLE3, base="+DS (Smooth Network)",
                           note="Border Network with lambda 0.1"),
        **{f"DFN, lambda {w}": PaperNumber(
            round(_PAPER_LAMBDA[w] - _PAPER_LAMBDA[0.1], 2), _SWEEP, base="DFN",
            note=f"{_PAPER_LAMBDA[w]} vs {_PAPER_LAMBDA[0.1]} at lambda 0.1")
           for w in LAMBDAS},
    },
    headline=("baseline", "DFN"),
    pretrained=(("baseline", "DFN"), ("baseline", "+DS (Smooth Network)")),
)
"""The ladder baseline -> +RRB -> +GP -> +CAB -> +DS (= the Smooth Network) -> +Border Network
(``DFN``, lambda 0.1); the sweep lambda in {0.05, 0.5, 1.0} around it; and the full DFN trained
with the official code's border loss instead of the focal loss (no paper number: the paper
describes only the focal loss). The paper's lambda 0.75 (78.47) is not in the sweep."""

MODELS = {"dfn": ModelSpec(build_dfn, DFN_OPTIONS, "DFN: Smooth and Border Networks, each module "
                                                  "switchable (none: the FCN-4-style baseline)")}
"""DFN and its ladder for the builder table."""

CHAPTER = Chapter(4, "04-dfn", "Channel attention and border supervision: DFN", ("1804.09337",),
                  (EXPERIMENT,), "fusionlab.models.dfn",
                  live={"DFN": EXPERIMENT.variants["DFN"],
                        "Smooth Network": EXPERIMENT.variants["+DS (Smooth Network)"]},
                  live_share=Fraction(3, 10))
