"""Photographers' sample files, made here (no downloads): HEIC, AVIF, a DNG, JPEGs with EXIF and GPS."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

# TIFF field types: (code, struct format of one value).
_SHORT, _LONG, _RATIONAL, _SRATIONAL, _ASCII, _BYTE = 3, 4, 5, 10, 2, 1
_FORMATS = {_SHORT: "H", _LONG: "I", _RATIONAL: "II", _SRATIONAL: "ii", _ASCII: "c", _BYTE: "B"}

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, ORIENTATION, DATETIME, ARTIST, COPYRIGHT = (
    0x010F,
    0x0110,
    0x0112,
    0x0132,
    0x013B,
    0x8298,
)
EXPOSURE_TIME, F_NUMBER, ISO, DATETIME_ORIGINAL = 0x829A, 0x829D, 0x8827, 0x9003
FOCAL_LENGTH, LENS_MODEL = 0x920A, 0xA434
GPS_LATITUDE_REF, GPS_LATITUDE = 0x0001, 0x0002

CAMERA = {MAKE: "Hotfolder", MODEL: "Test Body 1", ARTIST: "A. Photographer", COPYRIGHT: "(c) 2026"}
EXPOSURE = {
    EXPOSURE_TIME: (1, 250),
    F_NUMBER: (28, 10),
    ISO: 200,
    DATETIME_ORIGINAL: "2026:11:29 04:15:00",
    FOCAL_LENGTH: (50, 1),
    LENS_MODEL: "Test Lens 50mm",
}


def camera_exif(*, orientation: int = 1, gps: bool = False) -> Image.Exif:
    """A camera's EXIF: body, lens, exposure, date; with GPS when asked."""
    exif = Image.Exif()
    for tag, value in CAMERA.items():
        exif[tag] = value
    exif[ORIENTATION] = orientation
    exif[DATETIME] = "2026:11:29 04:15:00"
    sub = exif.get_ifd(EXIF_IFD)
    for tag, value in EXPOSURE.items():
        # A pair is a RATIONAL, as cameras write it (Pillow would write a bare tuple as two ints).
        sub[tag] = IFDRational(*value) if isinstance(value, tuple) else value
    if gps:
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps_ifd[GPS_LATITUDE_REF] = "N"
        gps_ifd[GPS_LATITUDE] = (IFDRational(52), IFDRational(31), IFDRational(12))
    return exif


def photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A picture with colour and detail."""
    return Image.merge(
        "RGB",
        [
            Image.effect_noise(size, 40),
            Image.linear_gradient("L").resize(size),
            Image.linear_gradient("L").rotate(90).resize(size),
        ],
    )


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def camera_jpeg(
    size: tuple[int, int] = (96, 64), *, orientation: int = 1, gps: bool = False
) -> bytes:
    return encoded(
        photo(size), "JPEG", quality=90, exif=camera_exif(orientation=orientation, gps=gps)
    )


def heic(size: tuple[int, int] = (96, 64), **params: Any) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encoded(photo(size), "HEIF", quality=90, **params)


def avif(size: tuple[int, int] = (96, 64), **params: Any) -> bytes:
    return encoded(photo(size), "AVIF", quality=90, **params)


def _entry(tag: int, kind: int, values: Any) -> tuple[int, int, int, bytes]:
    if kind == _ASCII:
        payload = values.encode("ascii") + b"\x00"
        return tag, kind, len(payload), payload
    values = values if isinstance(values, list | tuple) else [values]
    flat: list[int] = []
    for value in values:
        flat.extend(value if isinstance(value, tuple) else (value,))
    fmt = _FORMATS[kind]
    count = len(flat) // len(fmt)
    return tag, kind, count, struct.pack("<" + fmt * count, *flat)


def _ifd(entries: list[tuple[int, int, int, bytes]], at: int, next_ifd: int = 0) -> bytes:
    """One IFD written at offset `at`, its long values right after it."""
    entries = sorted(entries)
    extra_at = at + 2 + 12 * len(entries) + 4
    head, extra = [struct.pack("<H", len(entries))], b""
    for tag, kind, count, payload in entries:
        if len(payload) <= 4:
            head.append(struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\x00"))
        else:
            head.append(struct.pack("<HHII", tag, kind, count, extra_at + len(extra)))
            extra += payload + (b"\x00" if len(payload) % 2 else b"")
    return b"".join(head) + struct.pack("<I", next_ifd) + extra


def dng(size: tuple[int, int] = (96, 64), *, orientation: int = 1, exif: bool = True) -> bytes:
    """A minimal valid DNG: one uncompressed 16-bit RGGB Bayer strip, camera EXIF in IFD0.

    The scene is a warm gradient, so a developed result is colourful, not grey.
    """
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    red = 1000 + 40000 * xs // width
    green = 1000 + 30000 * ys // height
    blue = np.full_like(red, 8000)
    cfa = np.where(
        (ys % 2 == 0) & (xs % 2 == 0), red, np.where((ys % 2 == 1) & (xs % 2 == 1), blue, green)
    ).astype("<u2")
    pixels = cfa.tobytes()
    neutral = [(1, 1), (1, 1), (1, 1)]
    matrix = [(10000, 10000), (0, 10000), (0, 10000), (0, 10000), (10000, 10000), (0, 10000)]
    matrix += [(0, 10000), (0, 10000), (10000, 10000)]
    main = [
        _entry(0x00FE, _LONG, 0),  # NewSubfileType: the main image
        _entry(0x0100, _LONG, width),
        _entry(0x0101, _LONG, height),
        _entry(0x0102, _SHORT, 16),
        _entry(0x0103, _SHORT, 1),  # uncompressed
        _entry(0x0106, _SHORT, 32803),  # CFA
        _entry(ORIENTATION, _SHORT, orientation),
        _entry(0x0115, _SHORT, 1),
        _entry(0x0116, _LONG, height),
        _entry(0x0117, _LONG, len(pixels)),
        _entry(0x011C, _SHORT, 1),
        _entry(0x828D, _SHORT, [2, 2]),  # CFARepeatPatternDim
        _entry(0x828E, _BYTE, [0, 1, 1, 2]),  # CFAPattern: RGGB
        _entry(0xC612, _BYTE, [1, 4, 0, 0]),  # DNGVersion
        _entry(0xC613, _BYTE, [1, 1, 0, 0]),  # DNGBackwardVersion
        _entry(0xC614, _ASCII, "Hotfolder Test Body 1"),  # UniqueCameraModel
        _entry(0xC61A, _SHORT, 0),  # BlackLevel
        _entry(0xC61D, _SHORT, 65535),  # WhiteLevel
        _entry(0xC621, _SRATIONAL, matrix),  # ColorMatrix1: identity
        _entry(0xC628, _RATIONAL, neutral),  # AsShotNeutral: the camera's white balance
        _entry(0xC65A, _SHORT, 21),  # CalibrationIlluminant1: D65
    ]
    if exif:
        main += [_entry(tag, _ASCII, value) for tag, value in CAMERA.items()]
        main.append(_entry(DATETIME, _ASCII, "2026:11:29 04:15:00"))
    # As cameras write it: header, IFD0, the EXIF IFD, then the sensor data (so a file cut
    # short loses pixels, not its header). IFD sizes do not depend on the offsets in them.
    sub = [
        _entry(EXPOSURE_TIME, _RATIONAL, (1, 250)),
        _entry(F_NUMBER, _RATIONAL, (28, 10)),
        _entry(ISO, _SHORT, 200),
        _entry(DATETIME_ORIGINAL, _ASCII, "2026:11:29 04:15:00"),
        _entry(LENS_MODEL, _ASCII, "Test Lens 50mm"),
    ]

    def build(pixels_at: int, sub_at: int) -> bytes:
        entries = [*main, _entry(0x0111, _LONG, pixels_at)]
        if exif:
            entries.append(_entry(EXIF_IFD, _LONG, sub_at))
        block = _ifd(entries, 8)
        if exif:
            block += _ifd(sub, 8 + len(block))
        return block

    block = build(0, 0)
    sub_at = 8 + len(
        _ifd([*main, _entry(0x0111, _LONG, 0), *([_entry(EXIF_IFD, _LONG, 0)] if exif else [])], 8)
    )
    block = build(8 + len(block), sub_at)
    return b"II*\x00" + struct.pack("<I", 8) + block + pixels
