"""What a chapter needs from the notebook around it, whether or not the book toolchain is
installed: on Colab (the slim ``[colab]`` install) there is no myst-nb, whose ``glue`` hands
values to the book's prose."""

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
