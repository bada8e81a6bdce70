"""One rule for "Hub repository id or local path", used wherever a source, base model or dataset is named."""

import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def is_local_path(value: str) -> bool:
    """Whether `value` names something on this machine: it exists, or is written as a path (`./`, `/`, `~`)."""
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists() or not _REPO_ID.match(value)


def is_hub_id(value: str | None) -> bool:
    """Whether `value` is a Hub repository id (`name` or `namespace/name`) and not a local path: `runs/lm` is a
    repo id in form, but a local folder when it exists here."""
    return value is not None and bool(_REPO_ID.match(value)) and not is_local_path(value)


def shareable_name(value: str) -> str:
    """A Hub id (with its `@revision`) stays; a local path becomes "a local checkpoint" (cards never name paths)."""
    return value if is_hub_id(value.split("@")[0]) else "a local checkpoint"


__all__ = ["is_hub_id", "is_local_path", "shareable_name"]
