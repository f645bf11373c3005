"""The chapters' notebook helpers that need no book toolchain."""

import pytest

from fusionlab.notebook import markdown_table


def test_markdown_table_writes_header_separator_and_rows():
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, "y|z"]]) == (
        "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y\\|z |")
    assert markdown_table(["only"], []) == "| only |\n|---|"


def test_markdown_table_refuses_ragged_rows_and_no_header():
    with pytest.raises(ValueError, match=r"2 cells.*rows \[1\] have \[3\]"):
        markdown_table(["a", "b"], [[1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match="header"):
        markdown_table([], [])


def test_glue_values_glues_each_keyword_without_displaying(monkeypatch):
    from fusionlab import notebook
    glued = []
    monkeypatch.setattr(notebook, "glue", lambda name, value, display=True:
                        glued.append((name, value, display)))
    notebook.glue_values(live_miou=0.61, live_steps=1000, **{"sweep_0.5": "+1.0"})
    assert glued == [("live_miou", 0.61, False), ("live_steps", 1000, False),
                     ("sweep_0.5", "+1.0", False)]
