"""The camera EXIF a result keeps (SPEC "Photographers' files"): body, lens, exposure, date.

Only listed tags are copied, never whole blocks: a maker note or a thumbnail holds offsets
into the original file and would be garbage (or a hiding place) in the result. Orientation
is never kept (the pixels are already upright), and GPS only when the job asks
(`output.keep_gps: true`).
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from PIL import Image

EXIF_IFD: Final = 0x8769
GPS_IFD: Final = 0x8825
ORIENTATION: Final = 0x0112

# IFD0: Make, Model, DateTime, Artist, Copyright.
_MAIN_TAGS: Final = frozenset({0x010F, 0x0110, 0x0132, 0x013B, 0x8298})
# The EXIF IFD: exposure (time, f-number, program, ISO, bias, metering, flash, modes), dates
# and their offsets and sub-seconds, focal lengths, the owner, and the body's and lens's names
# and serial numbers.
_EXIF_TAGS: Final = frozenset(
    {
        *(0x829A, 0x829D, 0x8822, 0x8827, 0x8830, 0x8832),
        *(0x9003, 0x9004, 0x9010, 0x9011, 0x9012),
        *(0x9201, 0x9202, 0x9204, 0x9205, 0x9206, 0x9207, 0x9208, 0x9209, 0x920A),
        *(0x9290, 0x9291, 0x9292),
        *(0xA402, 0xA403, 0xA404, 0xA405, 0xA406),
        *(0xA430, 0xA431, 0xA432, 0xA433, 0xA434, 0xA435),
    }
)
# What a damaged EXIF block makes Pillow raise; it costs the metadata, never the image.
_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)
_ERRORS_ALL: Final = (*_ERRORS, struct.error, zlib.error)


def from_tiff(data: bytes) -> Image.Exif | None:
    """The EXIF of a TIFF-structured RAW (DNG, CR2, NEF, ARW...): its first IFD holds it."""
    if not data.startswith((b"II*\x00", b"MM\x00*")):
        return None
    exif = Image.Exif()
    try:
        exif.load(data[:16_000_000] if len(data) > 16_000_000 else data)
    except _ERRORS_ALL:
        return None
    return exif


def kept(exif: Image.Exif | None) -> bytes | None:
    """The listed tags of `exif` (GPS included) as EXIF bytes; None when none are there."""
    if exif is None:
        return None
    out = Image.Exif()
    try:
        for tag in _MAIN_TAGS & set(exif):
            out[tag] = exif[tag]
        sub = exif.get_ifd(EXIF_IFD)
        for tag in _EXIF_TAGS & set(sub):
            out.get_ifd(EXIF_IFD)[tag] = sub[tag]
        gps = exif.get_ifd(GPS_IFD)
        if gps:
            out.get_ifd(GPS_IFD).update(gps)
        if not len(out) and not out.get_ifd(EXIF_IFD) and not out.get_ifd(GPS_IFD):
            return None
        return out.tobytes()
    except _ERRORS_ALL:
        return None


def without_gps(data: bytes | None) -> bytes | None:
    """`data` with its GPS block removed."""
    if data is None:
        return None
    exif = Image.Exif()
    exif.load(data)
    if GPS_IFD not in exif:
        return data
    exif.get_ifd(EXIF_IFD)  # loaded, so rewriting IFD0 keeps the EXIF block
    del exif[GPS_IFD]
    return exif.tobytes()


def for_result(camera: bytes | None) -> Image.Exif:
    """The EXIF a result starts from: the kept camera tags, orientation reset to upright."""
    exif = Image.Exif()
    if camera:
        exif.load(camera)
        exif.get_ifd(EXIF_IFD)
        exif.get_ifd(GPS_IFD)
        exif[ORIENTATION] = 1
    return exif
