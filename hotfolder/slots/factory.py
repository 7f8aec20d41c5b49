"""The slots a service runs: a process per `editor.device` entry, Ray actors with
`executor: ray`, or threads around an editor object handed in (tests)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from hotfolder.config import Config
from hotfolder.editors import Editor
from hotfolder.errors import ConfigError
from hotfolder.slots.base import Slot, SlotListener, slot_names
from hotfolder.slots.process import ProcessSlot
from hotfolder.slots.thread import ThreadSlot


def make_slots(
    config: Config,
    listener: SlotListener,
    *,
    editor: Editor | None,
    note: Callable[[str | None], None],
) -> list[Slot]:
    """One slot per device. `note` is queue.json's `executor` note (a Ray cluster away)."""
    if editor is None and config.executor == "ray":
        return ray_slots(config, listener, note)
    devices = config.editor.devices
    warm = config.preset(None)
    slots: list[Slot] = []
    for name, device in zip(slot_names(devices), devices, strict=True):
        if editor is not None:
            slots.append(ThreadSlot(name, device, editor, listener, warm_preset=warm))
        else:
            slots.append(ProcessSlot(name, device, config, listener))
    return slots


def ray_slots(
    config: Config, listener: SlotListener, note: Callable[[str | None], None]
) -> list[Slot]:
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "executor: ray needs Ray on this machine: pip install 'hotfolder[ray]' "
            "(or set executor: local)"
        )
    from hotfolder.slots.ray import make_ray_slots

    return list(make_ray_slots(config, listener, note))
