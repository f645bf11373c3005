"""Sphinx extension: each page loads each script once.

sphinx-thebe's inline configuration (``const THEBE_JS_URL = ...``) reaches the pages twice
with jupyter-book 1.0, and a ``const`` declared twice is a JavaScript error in every
reader's console. This drops repeated script tags (same file, same inline body, same
attributes), keeping the first.
"""

from __future__ import annotations


def _unique(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # the same inline script arrives once with filename None and once with ""
        key = (getattr(script, "filename", script) or "",
               repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _unique, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
