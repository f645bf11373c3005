"""Argument types shared by the command lines (``python -m fusionlab`` and ``python -m fusionlab
experiment``): a number that must be positive is refused while the arguments are parsed, in
argparse's one-line message, before any data is read or model built."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``text`` as an integer of at least 1 (steps, workers, threads, cores).

    Raises:
        argparse.ArgumentTypeError: not an integer, or below 1 (names what came).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """``text`` as a finite number above 0 (e.g. a throughput in TFLOP/s).

    Raises:
        argparse.ArgumentTypeError: not a number, not finite, or not above 0 (names what came).
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value:g}")
    return value
