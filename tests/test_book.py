"""The book's sources: clean notebooks, one repository address, an install cell that finds this
library and not a namesake, formulas in LaTeX, hidden set-up cells, collapsible answers, a
summary per chapter, an intro that links what it promises, and a configuration that serves
everything from the book itself."""

import importlib
import json
import re
from pathlib import Path

try:  # Python 3.11 and later
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

import pytest
import yaml

from fusionlab.experiments import ablations
from fusionlab.experiments.estimate import ASSUMED_TFLOPS

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
REGISTERED = ablations.CHAPTERS  # the one list of chapters
CHAPTERS = [BOOK / "chapters" / f"{c.notebook}.ipynb" for c in REGISTERED]
CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DISTRIBUTION, VERSION = PROJECT["name"], PROJECT["version"]


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


def test_the_registered_chapters_are_the_books_in_its_order():
    on_disk = sorted(p.name for p in (BOOK / "chapters").iterdir()   # what the glob takes
                     if not p.name.startswith("."))                 # (not Jupyter's checkpoints)
    assert on_disk == [p.name for p in CHAPTERS]        # the glob's order is the registered one
    assert [c.number for c in REGISTERED] == list(range(1, len(REGISTERED) + 1))
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    assert toc["chapters"] == [{"glob": "chapters/*"}]
    for chapter, path in zip(REGISTERED, CHAPTERS):
        heading = _source(_cells(path)[0]).splitlines()[0]
        assert heading == f"# {chapter.number}. {chapter.title}", heading
        importlib.import_module(chapter.models)  # the module it names exists


def test_distribution_name_is_not_the_namesakes():
    # "fusionlab" on the package index is an unrelated project; the import name stays.
    assert DISTRIBUTION != "fusionlab" and DISTRIBUTION.startswith("fusionlab")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_clean_and_uses_the_one_repository_address(path):
    url = CONFIG["repository"]["url"]
    cells = _cells(path)
    code = [c for c in cells if c["cell_type"] == "code"]
    stored = [i for i, c in enumerate(code) if c["outputs"] and
              "nbval-check-output" not in c["metadata"].get("tags", [])]
    assert stored == [], f"code cells {stored} of {path.name} are committed with outputs"
    first = _source(cells[0])
    owner_repo = url.removeprefix("https://github.com/")
    colab = f"colab.research.google.com/github/{owner_repo}/blob/main/book/chapters/{path.name}"
    assert colab in first, f"{path.name} must open with a link to {colab}"
    # a badge would be an image from another host: missing offline, and a request the
    # browser test refuses
    assert "colab-badge" not in first
    text = "\n".join(_source(c) for c in cells)
    addresses = set(re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+)", text))
    assert addresses == {owner_repo}, f"repository addresses other than {url}: {addresses}"


def _install_cell(path):
    return [c for c in _cells(path) if c["cell_type"] == "code"][0]


def test_the_install_cells_are_one_cell():
    """Colab opens one notebook, so each chapter installs the library itself: with the same
    cell, word for word."""
    first = _source(_install_cell(CHAPTERS[0]))
    assert all(_source(_install_cell(path)) == first for path in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_install_cell_installs_this_release_and_is_hidden(path):
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    install = _source(code[0])
    url = CONFIG["repository"]["url"]
    assert f'distribution("{DISTRIBUTION}")' in install
    # the release of this version (one place to change: pyproject's version), the slim extra
    assert f'SOURCE = "git+{url}@v{VERSION}"' in install
    assert f'f"{DISTRIBUTION}[colab] @ {{source}}"' in install
    assert "torch==" in install  # the runtime's torch is pinned, so never replaced
    # the module found must come from this distribution, not from a namesake
    assert f'"{DISTRIBUTION}" in importlib.metadata.packages_distributions()' in install
    assert "remove-cell" in code[0]["metadata"].get("tags", [])
    setup = code[1]
    assert "import" in _source(setup) and "setup_chapter(CHAPTER)" in _source(setup)
    assert {"hide-input", "remove-cell"} & set(setup["metadata"].get("tags", []))
    assert "myst_nb" not in _source(setup)  # the slim install has no myst-nb


def _prose(markdown: str) -> str:
    """Markdown without its formulas, code spans, code blocks and links."""
    for pattern in (r"```.*?```", r"\$\$.*?\$\$", r"\$[^$\n]+\$", r"`[^`\n]*`",
                    r"\]\([^)]*\)"):
        markdown = re.sub(pattern, " ", markdown, flags=re.S)
    return markdown


PLAIN_MATH = re.compile(r"_\{|\^\{|[Σ∑Π∏⌊⌋²·]|\b[a-z]_[a-z0-9]\b")


@pytest.mark.parametrize("path", [*CHAPTERS, BOOK / "intro.md"], ids=lambda p: p.name)
def test_formulas_are_latex_not_plain_text(path):
    if path.suffix == ".md":
        texts = [path.read_text()]
    else:
        texts = [_source(c) for c in _cells(path) if c["cell_type"] == "markdown"]
    found = [m.group(0) for t in texts for m in PLAIN_MATH.finditer(_prose(t))]
    assert found == [], f"{path.name}: plain-text maths {found[:10]} (write it as $...$)"
    assert any("$" in t for t in texts), f"{path.name} has no LaTeX formula"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_answers_are_collapsible_and_the_chapter_ends_with_a_summary(path):
    cells = _cells(path)
    questions = [_source(c) for c in cells if c["cell_type"] == "markdown"
                 and "Check your understanding" in _source(c)]
    assert questions, f"{path.name} has no check of understanding"
    for q in questions:
        assert ":::{dropdown}" in q, f"an answer in {path.name} is not collapsible: {q[:80]}"
    last = cells[-1]
    assert last["cell_type"] == "markdown" and _source(last).startswith("## Summary")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_table_building_cells_show_their_table_not_their_code(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "display(Markdown(" in _source(cell):
            tags = set(cell["metadata"].get("tags", []))
            assert tags & {"hide-input", "remove-input"}, _source(cell)[:80]


def test_intro_links_the_chapters_papers_licence_and_citation():
    intro = (BOOK / "intro.md").read_text()
    papers = sorted({arxiv for chapter in REGISTERED for arxiv in chapter.arxiv})
    assert len(papers) == 4  # the book's four papers (chapter 6 names all four again)
    for arxiv in papers:
        assert f"https://arxiv.org/abs/{arxiv}" in intro
    for path in CHAPTERS:
        assert f"chapters/{path.stem}.ipynb" in intro
    rows = [line for line in intro.splitlines() if re.match(r"\| \[?\d\. ", line)]
    assert len(rows) == len(REGISTERED), rows  # each chapter linked, or said to be in preparation
    for row in rows:
        assert re.search(r"\]\(chapters/[\w-]+\.ipynb\)", row) or "in preparation" in row, row
    assert "MIT" in intro and "@misc{" in intro and CONFIG["repository"]["url"] in intro


def test_the_book_serves_its_own_javascript():
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["nb_render_markdown_format"] == "myst"
    extensions = set(CONFIG["parse"]["myst_enable_extensions"])
    assert {"dollarmath", "amsmath", "colon_fence"} <= extensions
    assert sphinx["html_extra_path"] == ["_extra"]
    # paths are relative to the built _static folder; the files come from `make vendor`
    scripts = [sphinx["mathjax_path"], *sphinx["nb_ipywidgets_js"]]
    for script in scripts:
        assert "://" not in script and script.startswith(("../vendor/", "../widgets/")), script
        if script.startswith("../widgets/"):   # ours, in git; ../vendor/ is fetched
            assert (BOOK / "_extra" / script.removeprefix("../")).is_file(), script
    makefile = (ROOT / "Makefile").read_text()
    for name in ("mathjax/tex-mml-chtml.js", "requirejs/require.js",
                 "html-manager/embed-amd.js"):
        assert any(s.endswith(name) for s in scripts), name
        folder, file = name.split("/")
        assert f"$(VENDOR)/{folder}" in makefile
    assert not list((BOOK / "_static").rglob("*.js")), "every .js in _static loads on every page"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    ids = [cell.get("id") for cell in _cells(path)]
    missing = [i for i, x in enumerate(ids) if x is None]
    assert not missing, f"{path.name}: cells {missing} have no id"
    assert len(set(ids)) == len(ids), f"{path.name} repeats a cell id"


def test_intro_estimates_every_chapter_on_colab_and_says_what_it_assumes():
    intro = (BOOK / "intro.md").read_text()
    rows = re.findall(r"^\| (\d) \| ([^|]+) \|", intro, flags=re.M)
    assert [(int(n), title.strip()) for n, title in rows] == [
        (c.number, c.title) for c in REGISTERED]
    assert f"{ASSUMED_TFLOPS:g} TFLOP/s" in intro and "python -m fusionlab experiment estimate" in intro


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_sets_up_in_one_call_and_trains_what_it_declares(path):
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                     if c["cell_type"] == "code")
    assert code.count("live_run(") == 1 and "live_run(CHAPTER.live," in code
    assert code.count("setup_chapter(CHAPTER)") == 1 and "use_book_style()" not in code
    assert "live_steps = CHAPTER.live_steps(profile)" in code
