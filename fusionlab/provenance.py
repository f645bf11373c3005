"""Where the running code comes from: the git commit of the checkout fusionlab lives in.

Results files (``fusionlab.experiments.store``) and training checkpoints (``fusionlab.train``)
record it, so every reference number names the code that made it.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

RESULTS = "results"
"""The folder of the ``fusionlab`` package that holds the book's reference results: the one
copy in the repository, shipped in the wheel as package data. Changes there are data, not
library code."""


@functools.cache
def git_commit() -> str:
    """The commit of the repository the package lives in (``"unknown"`` outside one, or
    when the package is installed inside another repository), marked when the library (its
    stored results aside) has uncommitted changes.

    Read once per process, at the first call: the code a process runs is the code it loaded,
    whatever the checkout's HEAD becomes while it trains."""
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root,
                             capture_output=True, text=True, check=True).stdout.strip()
        if Path(top).resolve() != root:  # installed inside another repository: not ours
            return "unknown"
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--",
                                "fusionlab", f":!fusionlab/{RESULTS}"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+uncommitted-library-changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
