"""Keeping paths from configs and run folders inside the folders the user allowed.

Rule for run configs (:mod:`core.estimation.runs.config`): every data path, model folder and cache
folder, after resolving ``..`` and following symlinks, must lie inside one of

* the config file's own folder,
* the data root (``{data}``: ``--data-root``, else ``$TASKAFFINITY_DATA``, else ``shared/data``
  beside the checkout),
* a folder given with ``--allow-path`` (repeatable), or
* a folder listed in ``$TASKAFFINITY_ALLOW_PATHS`` (separated by ``os.pathsep``).

These are decided by whoever starts the process (flags, environment), never by the file being
read: a config that names ``data_root:`` or ``allow_paths:`` is refused.

Rule for run folders (:mod:`core.estimation.runs.folder`): a file read from a run folder must resolve
inside that folder, so a symlink planted in a run folder cannot make the dashboard read (and
show parts of, in an error message) a file elsewhere.

The dashboard's runs root is :mod:`ui.services.roots`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from core.errors import InvalidInputError

ALLOW_ENV = "TASKAFFINITY_ALLOW_PATHS"


def env_allowed(env: dict[str, str] | None = None) -> tuple[Path, ...]:
    """Folders listed in ``$TASKAFFINITY_ALLOW_PATHS``, resolved."""
    env = os.environ if env is None else env
    raw = env.get(ALLOW_ENV, "")
    return tuple(Path(x).expanduser().resolve() for x in raw.split(os.pathsep) if x.strip())


def is_inside(path: Path, root: Path) -> bool:
    """True when resolved ``path`` is ``root`` or below it (both resolved by the caller)."""
    return path == root or root in path.parents


def confine(path: str | os.PathLike, roots: Iterable[str | os.PathLike], what: str) -> Path:
    """``path`` resolved (``..`` and symlinks), checked to lie inside one of ``roots``.

    Raises
    ------
    InvalidInputError
        Naming ``what``, the path, the allowed folders and how to allow another one.
    """
    resolved = Path(path).expanduser().resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if any(is_inside(resolved, r) for r in allowed):
        return resolved
    shown = ", ".join(str(r) for r in allowed) or "(none)"
    raise InvalidInputError(
        f"{what}: {path} resolves to {resolved}, outside the allowed folders ({shown}); move the data under the "
        f"config's folder or the data root, or allow its folder when starting the run (--allow-path DIR or "
        f"{ALLOW_ENV}).")


def inside_folder(path: Path, folder: Path) -> Path:
    """``path`` (a file of ``folder``) resolved, refused when a symlink takes it out of ``folder``."""
    resolved = path.resolve()
    if not is_inside(resolved, folder.resolve()):
        raise InvalidInputError(
            f"{path}: is a link to a file outside the run folder {folder}; run folders may only hold their own "
            "files (replace the link by a copy).")
    return resolved


def config_roots(config_dir: Path, data_root: Path, allow: Sequence[str | os.PathLike] | None,
                 where: str = "") -> tuple[Path, ...]:
    """The folders a config's data paths may lie in (see module docstring).

    ``allow``: the folders given by whoever starts the run (``--allow-path``), relative to the working
    folder; never a list read from the config.
    """
    extra = tuple(Path(a).expanduser().resolve() for a in (allow or ()) if str(a).strip())
    return (config_dir.resolve(), data_root.resolve(), *extra, *env_allowed())
