"""Files: atomic writes (a reader or a crash sees the old file or the new one, never half) and
fusionlab's cache folder."""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file next to ``path`` for writing; on success rename it onto ``path``
    (``os.replace``, atomic on POSIX), on any error delete it and re-raise.

    The new file gets the permissions an ordinary ``open(path, "w")`` would give it: those of
    the file it replaces, or for a new file 0666 minus the process's umask (the temporary file
    is created with that mode, so the kernel applies the umask).

    Args:
        path: the final file; missing parent folders are created.
        mode: ``"wb"`` or ``"w"``.

    Raises:
        IsADirectoryError: ``path`` is an existing folder (raised before anything is written).
        ValueError: a ``mode`` other than ``"wb"`` or ``"w"``.

    Example::

        with atomic_write("results.json", "w") as f:
            json.dump(results, f)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the file {path}: it is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    try:
        with os.fdopen(fd, mode) as f:
            if path.exists():
                os.chmod(f.fileno(), stat.S_IMODE(path.stat().st_mode))  # keep its mode
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """fusionlab's cache folder: ``$FUSIONLAB_CACHE``, else ``~/.cache/fusionlab``."""
    return Path(os.environ.get("FUSIONLAB_CACHE", Path.home() / ".cache" / "fusionlab"))
