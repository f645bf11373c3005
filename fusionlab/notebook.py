"""What a chapter needs from the notebook around it, whether or not the book toolchain is
installed: on Colab (the slim ``[colab]`` install) there is no myst-nb, whose ``glue`` hands
values to the book's prose; and the Markdown tables a chapter displays."""

from __future__ import annotations


def glue(name: str, value, display: bool = True) -> None:
    """Give ``value`` a ``name`` that the book's prose reads (``{glue:text}`name```).

    With myst-nb installed (the book build) this is ``myst_nb.glue``; without it (a notebook on
    Colab) the value is shown when ``display`` is true and otherwise dropped, since no prose
    reads it there.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show
            show(value)
        return
    myst_glue(name, value, display=display)


def glue_values(**values) -> None:
    """Give each value its keyword as the name the book's prose reads, displaying none of them
    (``glue`` with ``display=False``): ``glue_values(live_miou=0.61, live_steps=1000)``; names
    made at run time go in as a mapping, ``glue_values(**{f"sweep_{w}": v})``."""
    for name, value in values.items():
        glue(name, value, display=False)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: the header, the separator, then one line per row; every cell is
    written with ``str`` (format numbers before), a ``|`` inside a cell escaped.

    Raises:
        ValueError: no header, or a row whose length is not the header's.
    """
    if not header:
        raise ValueError("a table needs a header")
    bad = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"every row needs {len(header)} cells (the header's), rows {bad} have "
                         f"{[len(rows[i]) for i in bad]}")

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])
