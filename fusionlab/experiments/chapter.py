"""The first lines every chapter runs: the book's figure style, the active profile, the data,
and one printed line saying what this execution trains on."""

from __future__ import annotations

from typing import NamedTuple

from fusionlab.experiments.data import Data, load_data
from fusionlab.experiments.profiles import Profile, get_profile, imagenet_or_scratch
from fusionlab.experiments.spec import Chapter, Experiment
from fusionlab.notebook import glue
from fusionlab.viz import use_book_style


class ChapterSetup(NamedTuple):
    """What ``setup_chapter`` gives a chapter: unpack it as
    ``profile, data, experiment = setup_chapter(CHAPTER)``."""

    profile: Profile
    data: Data
    experiment: Experiment


def setup_chapter(chapter: Chapter) -> ChapterSetup:
    """Set the book's figure style, choose the profile (``FUSIONLAB_PROFILE``, else ``gpu``
    with CUDA, else ``cpu``; on the ImageNet encoder when ``chapter.imagenet`` and its weights
    are there), load its data, print a banner for each fallback (no ImageNet weights, no
    CamVid) and one line on what the chapter trains, and glue ``profile`` and ``steps`` for the
    prose.

    Returns:
        the profile, the data, and the chapter's first experiment.

    Raises:
        DataNotFoundError: CamVid required (``FUSIONLAB_REQUIRE_DATA=1``) and missing.
        ValueError: a chapter without experiments; an unknown ``FUSIONLAB_PROFILE``.
    """
    if not chapter.experiments:
        raise ValueError(f"chapter {chapter.number} names no experiment")
    use_book_style()  # figures at the column's width, text of 9 points and more
    profile = get_profile()
    if chapter.imagenet:
        profile, banner = imagenet_or_scratch(profile)
        if banner:
            print(banner)
    data = load_data(profile)
    if data.is_fallback:
        print(data.banner())
    (h, w), (eh, ew) = profile.size, data.eval_size
    print(f"profile {profile.name}, {profile.encoder} encoder: {data.source} at {h} x {w} "
          f"pixels, {len(data.train)} training and {len(data.val)} validation images (labels "
          f"scored at {eh} x {ew}); {profile.steps} training steps per model in this profile, "
          f"{chapter.live_steps(profile)} per model trained live here")
    glue("profile", profile.name, display=False)
    glue("steps", profile.steps, display=False)
    return ChapterSetup(profile, data, chapter.experiments[0])
