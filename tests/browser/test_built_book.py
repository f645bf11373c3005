"""The built book as a reader sees it, in Chromium driven by Playwright.

Runs on a built book (``make test`` builds the smoke book first and points
``FUSIONLAB_BOOK_HTML`` at it), served by a local HTTP server that this module starts. Every
page of the table of contents is opened once at 1280 x 900 pixels; the tests then check what
the reader would see: tables rendered as tables, pictures that load, typeset formulas, nothing
fetched from another host, no console errors, sliders that change their picture, a picture for
readers without JavaScript, and code that does not scroll sideways. Full-page screenshots go
to ``build/screenshots/``.

Skipped, with the reason, when Chromium (Debian's ``chromium`` package) or Playwright is
missing, or when no book was built and none was asked for.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path

import pytest
import yaml

from fusionlab.experiments.ablations import CHAPTERS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FUSIONLAB_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOTS = ROOT / "build" / "screenshots"

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y "
                "chromium; .ci/run does) or set FUSIONLAB_CHROMIUM", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is missing: pip install -e '.[test]'")

_ASKED = os.environ.get("FUSIONLAB_BOOK_HTML")
HTML = Path(_ASKED) if _ASKED else ROOT / "build" / "smoke-book" / "_build" / "html"
if not (HTML / "index.html").is_file():
    if _ASKED:
        pytest.fail(f"FUSIONLAB_BOOK_HTML={_ASKED} holds no built book (no index.html)",
                    pytrace=False)
    pytest.skip(f"no built book at {HTML}: `make test` builds the smoke book, then runs this",
                allow_module_level=True)


def _pages() -> list[str]:
    """The book's pages, as paths below the HTML root: the table of contents' root, then every
    registered chapter (the table of contents takes them by a glob of their folder)."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    return [f"{toc['root']}.html"] + [f"chapters/{c.notebook}.html" for c in CHAPTERS]


PAGES = _pages()

# Text outside code cells that only raw (unrendered) markdown tables or LaTeX would show.
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
RAW_LATEX = re.compile(r"\\(frac|mathrm|times|sum|begin)\b|\$\$|_\{|\^\{")

WAIT_FOR_PAGE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const views = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]').length;
  for (let i = 0; i < 100 && views > 0; i++) {   // the widget manager renders asynchronously
    const done = Array.from(document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]')).filter(s => {
        const prev = s.previousElementSibling;
        return prev && prev.classList.contains('widget-subarea') && prev.children.length;
      }).length;
    if (done === views) break;
    await new Promise(r => setTimeout(r, 100));
  }
  for (const img of document.images) {   // load every picture, lazy ones included
    img.loading = 'eager';
  }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(r => { img.onload = img.onerror = r; })));
}"""

INSPECT = """() => {
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const prose = document.querySelector('main').cloneNode(true);
  prose.querySelectorAll('.cell_input, pre, code, mjx-container, script, style, noscript')
    .forEach(e => e.remove());
  const views = Array.from(document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]'));
  return {
    prose: prose.textContent,
    tables: document.querySelectorAll('.cell_output table').length,
    images: Array.from(document.images).filter(i => !i.closest('noscript')).map(i => ({
      src: i.src.slice(0, 120), loaded: i.complete && i.naturalWidth > 0})),
    maths: Array.from(document.querySelectorAll('.math')).map(m => ({
      tex: m.textContent.slice(0, 80),
      typeset: !!m.querySelector('mjx-container') && !m.querySelector('mjx-merror')})),
    views: views.length,
    rendered: views.filter(s => {
      const prev = s.previousElementSibling;
      return prev && prev.classList.contains('widget-subarea') && prev.children.length;
    }).length,
    fallbacks: (document.documentElement.innerHTML.match(/class="slider-fallback"/g) || []).length,
    sliders: document.querySelectorAll('.widget-hslider').length,
    overflowing: Array.from(document.querySelectorAll('pre')).filter(
      p => visible(p) && p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.slice(0, 80)),
  };
}"""

VISIBLE_PICTURE = """box => {
  const shown = Array.from(box.querySelectorAll('img')).filter(
    i => i.offsetWidth > 0 && i.offsetHeight > 0);
  const caption = Array.from(box.querySelectorAll('.widget-html-content')).filter(
    c => c.offsetWidth > 0).map(c => c.textContent);
  return {pictures: shown.map(i => i.src), caption: caption.join(' ')};
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """The built book on a local HTTP server; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def _open(browser, server, page_path: str, javascript: bool = True):
    """A new browser page at ``page_path`` that refuses every request to another host, with
    a record of those requests, console errors and failed responses."""
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=javascript)
    record = {"foreign": [], "errors": [], "failed": []}

    def route(request_route):
        if request_route.request.url.startswith(server):
            request_route.continue_()
        else:
            record["foreign"].append(f"{request_route.request.resource_type} "
                                     f"{request_route.request.url}")
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and record["errors"].append(m.text))
    page.on("pageerror", lambda e: record["errors"].append(f"uncaught: {e}"))
    page.on("response", lambda r: r.status >= 400 and record["failed"].append(
        f"{r.status} {r.url}"))
    page.goto(server + page_path, wait_until="load")
    return context, page, record


def _move_sliders(page) -> list[dict]:
    """Press the right arrow key on every slider; what each showed before and after."""
    moves = []
    for handle in page.query_selector_all(".widget-hslider .noUi-handle"):
        box = handle.evaluate_handle("h => h.closest('.widget-vbox')")
        before = box.evaluate(VISIBLE_PICTURE)
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        moves.append({"before": before, "after": box.evaluate(VISIBLE_PICTURE)})
    return moves


@pytest.fixture(scope="module")
def visits(browser, server):
    """Every page opened once (JavaScript on: inspected, screenshot, sliders moved) and once
    more with JavaScript off; results by page path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    results = {}
    for page_path in PAGES:
        context, page, record = _open(browser, server, page_path)
        page.evaluate(WAIT_FOR_PAGE)
        record.update(page.evaluate(INSPECT))
        name = page_path.removesuffix(".html").replace("/", "_")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        record["moves"] = _move_sliders(page)
        context.close()
        context, page, _ = _open(browser, server, page_path, javascript=False)
        record["static_fallbacks"] = page.evaluate("""() => Array.from(document.querySelectorAll(
            'figure.slider-fallback img')).map(i => i.complete && i.naturalWidth > 0)""")
        context.close()
        results[page_path] = record
    return results


@pytest.mark.parametrize("page", PAGES)
def test_tables_render_as_tables(visits, page):
    v = visits[page]
    raw = RAW_TABLE.findall(v["prose"])
    assert raw == [], f"{page} shows raw markdown table text: {raw[:3]}"
    if page.startswith("chapters/"):
        assert v["tables"] > 0, f"{page}: no table in the cells' output"


@pytest.mark.parametrize("page", PAGES)
def test_every_picture_loads(visits, page):
    broken = [i["src"] for i in visits[page]["images"] if not i["loaded"]]
    assert broken == [], f"{page}: pictures that do not load: {broken}"


@pytest.mark.parametrize("page", PAGES)
def test_formulas_are_typeset(visits, page):
    v = visits[page]
    assert v["maths"], f"{page} has no formula"
    untypeset = [m["tex"] for m in v["maths"] if not m["typeset"]]
    assert untypeset == [], f"{page}: formulas MathJax did not typeset: {untypeset[:5]}"
    raw = sorted({m.group(0) for m in RAW_LATEX.finditer(v["prose"])})
    assert raw == [], f"{page}: LaTeX shown as text: {raw}"


@pytest.mark.parametrize("page", PAGES)
def test_nothing_is_fetched_from_another_host(visits, page):
    assert visits[page]["foreign"] == [], f"{page} requests {visits[page]['foreign']}"


@pytest.mark.parametrize("page", PAGES)
def test_no_console_error_and_no_missing_file(visits, page):
    v = visits[page]
    assert v["errors"] == [] and v["failed"] == [], (v["errors"], v["failed"])


@pytest.mark.parametrize("page", PAGES)
def test_every_widget_renders_and_every_slider_changes_its_picture(visits, page):
    v = visits[page]
    assert v["rendered"] == v["views"], f"{page}: {v['views'] - v['rendered']} widgets not shown"
    assert v["sliders"] == v["fallbacks"], (f"{page}: {v['fallbacks']} sliders in the page, "
                                            f"{v['sliders']} shown")
    assert len(v["moves"]) == v["sliders"]
    for move in v["moves"]:
        before, after = move["before"], move["after"]
        assert len(before["pictures"]) == len(after["pictures"]) == 1, move
        assert before["pictures"] != after["pictures"], f"{page}: a slider moved, same picture"
        assert before["caption"] != after["caption"], f"{page}: a slider moved, same caption"


@pytest.mark.parametrize("page", PAGES)
def test_without_javascript_each_slider_shows_its_first_view(visits, page):
    v = visits[page]
    assert len(v["static_fallbacks"]) == v["fallbacks"] and all(v["static_fallbacks"])


@pytest.mark.parametrize("page", PAGES)
def test_code_does_not_scroll_sideways(visits, page):
    assert visits[page]["overflowing"] == [], f"{page}: {visits[page]['overflowing'][:3]}"


def test_the_chapters_have_sliders(visits):
    # guards the slider test against passing on pages where no widget was rendered at all
    assert sum(v["sliders"] for v in visits.values()) >= len(PAGES) - 1
