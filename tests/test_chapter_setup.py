"""The chapters' one setup call."""

from fractions import Fraction

import matplotlib as mpl
import pytest

from fusionlab.experiments import EXPERIMENTS, PROFILES
from fusionlab.experiments.chapter import setup_chapter
from fusionlab.experiments.spec import Chapter
from fusionlab.viz import FIGURE_WIDTH


def _chapter(**fields):
    return Chapter(9, "09-test", "test", (), (EXPERIMENTS["gff"], EXPERIMENTS["dfn"]),
                   "fusionlab.models", **fields)


def test_setup_gives_profile_data_and_first_experiment_and_says_what_it_trains(monkeypatch,
                                                                                capsys):
    monkeypatch.setenv("FUSIONLAB_PROFILE", "smoke")
    mpl.rcParams["figure.figsize"] = (1.0, 1.0)
    profile, data, experiment = setup_chapter(_chapter(live_share=Fraction(1, 2)))
    assert profile == PROFILES["smoke"] and experiment is EXPERIMENTS["gff"]
    assert len(data.train) == PROFILES["smoke"].train_images
    assert mpl.rcParams["figure.figsize"][0] == FIGURE_WIDTH        # the book's style is set
    out = capsys.readouterr().out.splitlines()[-1]
    assert out.startswith("profile smoke, resnet encoder: ")
    assert f"{data.source} at 48 x 64 pixels" in out
    assert "8 training steps per model in this profile, 4 per model trained live here" in out


def test_a_chapter_without_experiments_is_refused(monkeypatch):
    monkeypatch.setenv("FUSIONLAB_PROFILE", "smoke")
    with pytest.raises(ValueError, match="names no experiment"):
        setup_chapter(Chapter(9, "09-test", "test", (), (), "fusionlab.models"))
