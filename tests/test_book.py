"""The book's sources: clean notebooks, one repository address, a table of contents that
lists every chapter."""

import json
import re
from pathlib import Path

import pytest
import yaml

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted((BOOK / "chapters").glob("*.ipynb"))


def test_every_chapter_is_in_the_toc():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    listed = {c["file"] for c in toc["chapters"]}
    assert listed == {f"chapters/{p.stem}" for p in CHAPTERS}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_clean_and_uses_the_one_repository_address(path):
    url = yaml.safe_load((BOOK / "_config.yml").read_text())["repository"]["url"]
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    stored = [i for i, c in enumerate(code) if c["outputs"] and
              "nbval-check-output" not in c["metadata"].get("tags", [])]
    assert stored == [], f"code cells {stored} of {path.name} are committed with outputs"
    first = "".join(nb["cells"][0]["source"])
    owner_repo = url.removeprefix("https://github.com/")
    colab = f"colab.research.google.com/github/{owner_repo}/blob/main/book/chapters/{path.name}"
    assert colab in first, f"{path.name} must open with a Colab badge for {colab}"
    install = "".join(code[0]["source"])
    assert "find_spec(\"fusionlab\") is None" in install and f"git+{url}" in install
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    addresses = set(re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+)", text))
    assert addresses == {owner_repo}, f"repository addresses other than {url}: {addresses}"
