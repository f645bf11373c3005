"""The loud notice a chapter or command prints when it falls back to a stand-in (synthetic data,
an encoder from scratch), so that no reader mistakes its numbers for the real ones."""

from __future__ import annotations


def fallback_banner(headline: str, reason: str, width: int = 78) -> str:
    """A block of lines framed by ``!``: the headline lines, then "Why:" and the reason.

    Args:
        headline: what is used instead and what that means (one or more lines).
        reason: the error that caused the fallback (one or more lines).
    """
    line = "!" * width
    head = "\n".join(f"!! {text}" for text in headline.splitlines())
    why = "\n".join(f"!!   {text}" for text in reason.splitlines())
    return f"{line}\n{head}\n!! Why:\n{why}\n{line}"
