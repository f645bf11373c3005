"""Checkpoints: written atomically, loaded with ``weights_only=True`` (no code is unpickled), and
checked against the model they are loaded into, with errors that name the file and what is
wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from fusionlab.io import atomic_write


def check_checkpoint_path(path: str | os.PathLike) -> None:
    """Fail before training, not at the first save: ``path`` must not be a folder and its
    folder must exist or be creatable.

    Raises:
        ValueError: ``path`` is a folder, or its parent cannot be a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder; give a file name, e.g. "
                         f"{path / 'run.pt'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise ValueError(f"checkpoint {path}: its folder {path.parent} cannot be created "
                         f"({err})") from err


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` through ``atomic_write``: a crash leaves either the old or the new
    checkpoint, never a truncated one."""
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint written by ``train`` with ``weights_only=True`` (no arbitrary code is
    unpickled).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty file, a file that is not a PyTorch checkpoint (e.g. text), or
            one without model weights; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is an empty file")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch's unpickler fails on foreign bytes in many ways
        head = path.read_bytes()[:16]
        raise ValueError(f"{path} is not a readable fusionlab checkpoint (starts with "
                         f"{head!r}; {type(err).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), Mapping):
        raise ValueError(f"{path} is a PyTorch file but not a fusionlab checkpoint (no model "
                         f"weights under 'model')")
    return state


def check_weights(model: torch.nn.Module, weights: Mapping, source: str) -> None:
    """Check that ``weights`` fit ``model`` exactly, without loading them.

    Args:
        source: what the weights come from, for the message (e.g. ``"checkpoint run.pt"``).

    Raises:
        ValueError: weights of another model, or of the same layers at other sizes (the counts
            of missing, unexpected and reshaped keys that occur, with a few names each).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    resized = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
               if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or resized:
        def few(names):
            return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        parts = [f"{len(names)} {what}{few(names)})" for names, what in (
            (missing, "missing keys ("), (unexpected, "unexpected keys ("),
            (resized, "shapes differ (checkpoint vs model: ")) if names]
        same_layers = not missing and not unexpected  # another width, encoder or option
        raise ValueError(
            f"{source} holds weights of "
            + (f"the same layers as this {type(model).__name__} at other sizes, built with "
               f"other options (another profile's width, encoder or module options?): "
               if same_layers else f"another model than this {type(model).__name__}: ")
            + ", ".join(parts))


def apply_weights(model: torch.nn.Module, weights: Mapping, source: str) -> None:
    """``model.load_state_dict(weights)`` after ``check_weights``: nothing is loaded unless
    every weight fits.

    Raises:
        ValueError: see ``check_weights``.
    """
    check_weights(model, weights, source)
    model.load_state_dict(weights)


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load the weights of checkpoint ``path`` into ``model`` (on the model's device).

    Returns:
        the whole checkpoint (``"step"``, ``"config"``, ...).

    Raises:
        FileNotFoundError, ValueError: see ``load_checkpoint``; ValueError: weights that do
            not fit (``check_weights``).
    """
    device = next(model.parameters()).device
    state = load_checkpoint(path, device)
    apply_weights(model, state["model"], f"checkpoint {path}")
    return state
