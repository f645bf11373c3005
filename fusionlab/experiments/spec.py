"""What an experiment is: named variants (models of the builder table) and the paper's numbers;
what a builder receives.

Each paper's experiments live in ``fusionlab/experiments/ablations/<paper>.py``; the runner, the
store and the report tables only read these descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable

from torch.utils.data import Dataset

from fusionlab.experiments.profiles import Profile


def as_tuple(value) -> tuple:
    """A list option as a tuple: a tuple or list stays as it is, one value (``"c5"`` from
    ``levels=c5`` on the command line, ``5``) becomes a tuple of one."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass(frozen=True)
class BuildContext:
    """What every builder may use.

    Attributes:
        num_classes: K.
        profile: the active profile (encoder layout, decoder width).
        train_set: the training set (for heads fitted to the labels); may be ``None`` for a
            model that does not need it.
    """

    num_classes: int
    profile: Profile
    train_set: Dataset | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A buildable model: its builder and the options it accepts. Each paper's ablation module
    lists its own (``MODELS``); ``fusionlab.experiments.builders.MODELS`` collects them.

    Attributes:
        build: ``build(context, **options) -> SegmentationModel``.
        options: option name -> one-line help.
        summary: one line for ``--help``.
    """

    build: Callable[..., Any]
    options: dict[str, str] = field(default_factory=dict)
    summary: str = ""


@dataclass(frozen=True)
class Variant:
    """One model of an experiment: a ``MODELS`` key and its options."""

    model: str
    options: dict[str, Any] = field(default_factory=dict)

    def options_text(self, skip: Iterable[str] = ()) -> str:
        """The options as a table cell: ``"ss, dap, kernel=7"`` (a switch that is on by its
        name, any other value as ``name=value``), those named in ``skip`` left out; ``""``
        when none is left."""
        return ", ".join(name if value is True else f"{name}={value}"
                         for name, value in self.options.items() if name not in skip)


@dataclass(frozen=True)
class PaperNumber:
    """A number the paper reports for one of our variants.

    Attributes:
        value: in percent: an mIoU (``base`` is ``None``) or a gain in mIoU points over the
            variant ``base``.
        source: where it is printed, e.g. ``"ExFuse, Table 3, VOC 2012 val"``.
        base: the variant the gain is measured from (``None`` for an absolute mIoU).
        note: what differs from our setting.
    """

    value: float
    source: str
    base: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Experiment:
    """A named set of variants trained for every seed, and the paper's numbers beside them.

    Attributes:
        name: the command-line name, e.g. ``"exfuse"``.
        title: one line for tables and ``--help``.
        variants: label -> ``Variant``, in the order of the paper's table.
        paper: label -> ``PaperNumber`` (every label and every ``base`` names a variant).
        headline: (base, variant) of the comparison run with more seeds, or ``None``.
        pretrained: the (base, variant) comparisons run on the ImageNet encoder (the papers'
            footing): the headline, or its nearest twin where a variant changes the encoder's
            layout, which pretrained weights fix. On a pretrained encoder ``run_experiment``
            trains these variants unless told otherwise.
        borrowed: label -> (experiment name, variant label) of a variant that is another
            experiment's variant: ``run_experiment`` copies its runs from that experiment's
            stored results of the same profile configuration and autocast precision instead
            of training them again (``runner.borrowed_runs``).
    """

    name: str
    title: str
    variants: dict[str, Variant]
    paper: dict[str, PaperNumber] = field(default_factory=dict)
    headline: tuple[str, str] | None = None
    pretrained: tuple[tuple[str, str], ...] = ()
    borrowed: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def pretrained_variants(self) -> list[str]:
        """The variants of the ``pretrained`` comparisons, in table order."""
        named = {v for pair in self.pretrained for v in pair}
        return [v for v in self.variants if v in named]

    def __post_init__(self):
        names = set(self.variants)
        wrong = sorted({k for k in self.paper if k not in names}
                       | {p.base for p in self.paper.values() if p.base and p.base not in names})
        if wrong:
            raise ValueError(f"experiment {self.name!r}: paper numbers name unknown variants "
                             f"{wrong}; variants are {sorted(names)}")
        if self.headline and not set(self.headline) <= names:
            raise ValueError(f"experiment {self.name!r}: headline {self.headline} names an "
                             f"unknown variant")
        unknown = sorted({v for pair in self.pretrained for v in pair} - names)
        if unknown:
            raise ValueError(f"experiment {self.name!r}: pretrained comparisons name unknown "
                             f"variants {unknown}")
        if not set(self.borrowed) <= names:
            raise ValueError(f"experiment {self.name!r}: borrowed variants "
                             f"{sorted(set(self.borrowed) - names)} are not its variants")


@dataclass(frozen=True)
class Chapter:
    """A chapter of the book and what it rests on, registered once: in its paper's ablation
    module (``CHAPTER``), listed in ``fusionlab.experiments.ablations.CHAPTERS``. The command
    line, the book's tests and the intro's table read that list.

    Attributes:
        number: its place in the book (1, 2, ...).
        notebook: the file name in ``book/chapters`` without ``.ipynb``.
        title: as in the table of contents.
        arxiv: the arXiv ids of the papers it teaches (the intro links each).
        experiments: the experiments whose reference results it reads.
        models: the module of its models, e.g. ``"fusionlab.models.exfuse"``.
        live: what the chapter trains while it executes, label -> variant (one seed each).
        live_share: the share of the profile's steps each live model trains (the chapter's
            time budget in the ``cpu`` profile decides it).
        imagenet: the live models fine-tune the ImageNet encoder when its weights are there
            (``imagenet_or_scratch``), instead of the profile's encoder.

    Raises:
        ValueError: a ``live_share`` outside (0, 1].
    """

    number: int
    notebook: str
    title: str
    arxiv: tuple[str, ...]
    experiments: tuple[Experiment, ...]
    models: str
    live: dict[str, Variant] = field(default_factory=dict)
    live_share: Fraction = Fraction(1)
    imagenet: bool = False

    def __post_init__(self):
        if not 0 < self.live_share <= 1:
            raise ValueError(f"chapter {self.number}: live_share must be in (0, 1], got "
                             f"{self.live_share}")

    def live_steps(self, profile: Profile) -> int:
        """Steps of each live model in ``profile``: its share of the profile's schedule, at
        least 1 (``floor(live_share * profile.steps)``)."""
        return max(1, int(self.live_share * profile.steps))
