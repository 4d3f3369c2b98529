"""Where pretrained files are kept, without importing torch (the families' specs list their
files and say whether they are here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: torch's own answer when torch is loaded (so
    torch.hub.set_dir is honoured), else the same rule ($TORCH_HOME, $XDG_CACHE_HOME/torch,
    ~/.cache/torch, then "hub")."""
    torch = sys.modules.get("torch")
    hub = getattr(torch, "hub", None) if torch is not None else None
    if hub is not None:
        return Path(hub.get_dir())
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"),
                                                                   "torch")))
    return Path(home) / "hub"
