"""Slots: one editor on one device, behind one small interface (see `slots.base`).

`thread` runs the editor in a thread of the service (tests, an editor handed in);
`process` runs it in a process of its own, one per entry of `editor.device`.
"""
