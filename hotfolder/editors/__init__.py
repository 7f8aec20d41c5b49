"""Editors turn one RGB image and an instruction into another RGB image.

torch and diffusers are imported only inside the qwen editor, so the service,
its tests and `hotfolder check` run without them.
"""

from __future__ import annotations

from hotfolder.config import Config
from hotfolder.editors.base import Editor, EditRequest, EditResult, Interrupted, ProgressFn

__all__ = ["EditRequest", "EditResult", "Editor", "Interrupted", "ProgressFn", "make_editor"]


def make_editor(config: Config, device: str | None = None) -> Editor:
    """The editor the configuration names, for `device` (default: the first), not yet loaded."""
    if config.editor.name == "identity":
        from hotfolder.editors.identity import IdentityEditor

        return IdentityEditor(delay_seconds=config.editor.delay_seconds)
    from hotfolder.editors.qwen import QwenEditor

    return QwenEditor(config.editor.on(device or config.editor.devices[0]))
