"""Which folders a command may take as its root (SPEC: "Roots").

Every command but `run` needs a hotfolder tree: a folder holding `.hotfolder/`, which
`run` makes. A typo in `--root` must not read as "the service is stopped" nor build a
new tree somewhere unexpected, so `run` sets up only a folder that exists and is empty
or already meant for it (an `inbox/`, or a config file: the one given, or any YAML file at
its top or in its `config/`), unless `--init`.
"""

from __future__ import annotations

from pathlib import Path

from hotfolder.config import DEFAULT_CONFIG_PATH
from hotfolder.errors import ConfigError
from hotfolder.layout import Layout
from hotfolder.names import is_junk


def _not_a_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"--root {root} is a file, not a folder; pass the folder that holds inbox/ and outbox/"
        )


def require_tree(root: Path) -> Layout:
    """The layout of a root that `hotfolder run` has set up; else ConfigError (exit 2)."""
    _not_a_folder(root)
    if not root.exists():
        raise ConfigError(
            f"--root {root} does not exist; pass the folder `hotfolder run` uses "
            "(it holds inbox/, outbox/ and .hotfolder/)"
        )
    layout = Layout(root)
    if not layout.private.is_dir():
        raise ConfigError(
            f"{root} is not a hotfolder tree (it has no .hotfolder/); pass --root with the "
            f"folder `hotfolder run` uses, or set this one up with `hotfolder run --root {root}`"
        )
    return layout


def prepare(root: Path, *, init: bool, config_file: Path | None = None) -> None:
    """Check a root for `run`; the service then makes whatever folders are missing.
    `config_file`: the one `run` reads; inside the root, it says the root is meant for us."""
    _not_a_folder(root)
    if not root.exists():
        if not init:
            raise ConfigError(
                f"--root {root} does not exist; check the path, or add --init to create it "
                "and set up a hotfolder tree there"
            )
        return
    if init or _meant_for_us(root, config_file):
        return
    raise ConfigError(
        f"{root} holds other files and no inbox/, .hotfolder/ or config file (such as "
        f"{DEFAULT_CONFIG_PATH}); check --root, or add --init to set up a hotfolder tree in "
        "this folder anyway"
    )


def _meant_for_us(root: Path, config_file: Path | None) -> bool:
    """Empty (system junk aside), or already holding an inbox/, .hotfolder/ or config file:
    the one `run` reads, or a YAML file at its top or in its config/."""
    if (root / ".hotfolder").is_dir() or (root / "inbox").is_dir():
        return True
    if config_file is not None and root.resolve() in config_file.resolve().parents:
        return True
    for folder in (root, root / DEFAULT_CONFIG_PATH.parent):
        if folder.is_dir() and any(
            entry.is_file() and entry.suffix.lower() in (".yaml", ".yml")
            for entry in folder.iterdir()
        ):
            return True
    return all(is_junk(entry.name) for entry in root.iterdir())
