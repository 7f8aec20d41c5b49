"""Camera RAW files (SPEC "Photographers' files"): checked and developed with LibRaw (rawpy).

The same hostile-input rules as for other images: the whole file is read into memory once
(at most `limits.max_raw_bytes`), its sensor size is checked from the header before a
single pixel is unpacked, a file that starts like a RAW but does not unpack may still be
copying (IncompleteImage), and content that is really a JPEG or PNG named `.nef` is
`invalid_image`. A RAW is developed with the camera's white balance to 8-bit sRGB at half
size when that is still larger than `max_dimension` (a quarter of the memory and time),
then scaled to fit `max_dimension` on its long side.
"""

from __future__ import annotations

import io
from typing import Final

import rawpy
from PIL import Image

from hotfolder.config import Limits
from hotfolder.errors import HotfolderError, IncompleteImage, Reason, Rejected
from hotfolder.layout import RAW_SUFFIXES

# The largest sensors sold today are ~150 MP (Phase One IQ4); past this a header is crafted.
# LibRaw's unpacked data is 2 bytes a pixel, so this bounds it at ~400 MB.
RAW_MAX_PIXELS: Final = 200_000_000

# How RAW containers begin: TIFF (DNG, CR2, NEF, ARW, PEF...), Olympus, Panasonic, Fujifilm,
# and the ISO media box of Canon's CR3. Such a file that does not unpack may be cut short.
_RAW_SIGNATURES: Final = (
    b"II*\x00",
    b"MM\x00*",
    b"IIRO",  # Olympus ORF
    b"IIRS",
    b"MMOR",
    b"IIU\x00",  # Panasonic RW2
    b"FUJIFILMCCD-RAW",
)
# What a RAW-named file really holds when it is an ordinary picture: say so and name the fix.
_PICTURE_SIGNATURES: Final = (
    (b"\xff\xd8\xff", "JPEG", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "PNG", ".png"),
    (b"GIF8", "GIF", ".gif"),
    (b"BM", "BMP", ".bmp"),
)


def is_raw(suffix: str) -> bool:
    return suffix.lower() in RAW_SUFFIXES


def _looks_raw(data: bytes) -> bool:
    return data.startswith(_RAW_SIGNATURES) or data[4:12] == b"ftypcrx "


def _lie(data: bytes, name: str, suffix: str) -> Rejected | None:
    for signature, fmt, right in _PICTURE_SIGNATURES:
        if data.startswith(signature):
            return Rejected(
                Reason.invalid_image,
                f"{name} contains {fmt} data but is named {suffix}; rename it to {right}",
            )
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Rejected(
            Reason.invalid_image, f"{name} contains WEBP data but is named {suffix}; rename it"
        )
    if data[4:8] == b"ftyp" and data[8:12] != b"crx ":
        return Rejected(
            Reason.invalid_image,
            f"{name} contains HEIF/AVIF data but is named {suffix}; rename it to .heic or .avif",
        )
    return None


def _opened(data: bytes, name: str, suffix: str) -> rawpy.RawPy:
    """A rawpy.RawPy with the header read and its size checked; nothing unpacked yet."""
    lie = _lie(data, name, suffix)
    if lie is not None:
        raise lie
    raw = rawpy.RawPy()
    try:
        raw.open_buffer(io.BytesIO(data))
    except rawpy.LibRawError as e:
        raw.close()
        raise _failure(data, name, e) from e
    sizes = raw.sizes
    if sizes.raw_width * sizes.raw_height > RAW_MAX_PIXELS or min(sizes.width, sizes.height) < 1:
        raw.close()
        raise Rejected(
            Reason.invalid_image,
            f"{name} declares a {sizes.raw_width}\u00d7{sizes.raw_height} px sensor, beyond any "
            f"camera ({RAW_MAX_PIXELS // 1_000_000} MP): a decompression bomb; it was not decoded",
        )
    return raw


def _failure(data: bytes, name: str, error: Exception) -> HotfolderError:
    if isinstance(error, rawpy.LibRawTooBigError | rawpy.LibRawUnsufficientMemoryError):
        return Rejected(Reason.invalid_image, f"{name} is too big for LibRaw to unpack ({error})")
    if _looks_raw(data):
        return IncompleteImage(
            f"{name} starts like a camera RAW file but cannot be read yet ({error!s}); "
            "it may still be copying"
        )
    return Rejected(
        Reason.invalid_image,
        f"{name} is not a camera RAW file LibRaw can read; drop the camera's JPEG instead",
    )


def check(data: bytes, name: str, suffix: str) -> tuple[int, int]:
    """Header, size and a full unpack (which reads every byte of sensor data); the developed
    size (width, height) as stored, before the camera's rotation."""
    raw = _opened(data, name, suffix)
    with raw:
        try:
            raw.unpack()
        except rawpy.LibRawError as e:
            raise _failure(data, name, e) from e
        return raw.sizes.width, raw.sizes.height


def fit_size(size: tuple[int, int], max_dimension: int) -> tuple[int, int]:
    """`size` scaled to fit `max_dimension` on its long side (unchanged when it fits)."""
    width, height = size
    if max(width, height) <= max_dimension:
        return size
    scale = max_dimension / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def develop(data: bytes, name: str, suffix: str, limits: Limits) -> Image.Image:
    """The RAW developed with the camera's white balance to upright 8-bit sRGB, fitted to
    `limits.max_dimension`."""
    raw = _opened(data, name, suffix)
    with raw:
        half = min(raw.sizes.width, raw.sizes.height) // 2 >= 1 and (
            max(raw.sizes.width, raw.sizes.height) // 2 >= limits.max_dimension
        )
        try:
            raw.unpack()
            rgb = raw.postprocess(
                use_camera_wb=True,
                output_bps=8,
                output_color=rawpy.ColorSpace.sRGB,
                half_size=half,
            )
        except rawpy.LibRawError as e:
            raise _failure(data, name, e) from e
    image = Image.fromarray(rgb, "RGB")
    target = fit_size(image.size, limits.max_dimension)
    if target != image.size:
        image = image.resize(target, Image.Resampling.LANCZOS)
    return image
