"""Whether an image file is all there by its format's own end, not by what a decoder forgives.

Windows Explorer over SMB (and other copiers) sets a file's final size first and fills it
in later. Stalled halfway, such a file has settled (size and mtime unchanged) and Pillow
decodes its JPEG or WebP without an error, the missing part grey: the edit ran on half a
picture while the copy went on writing into the file (issue 14). So:

- JPEG: the end-of-image marker must be there. Fast path: the file, less any zero padding,
  ends in FF D9. Otherwise the segments are walked to a real EOI (a trailer after it, such
  as a motion photo's video, is fine); a zero-filled tail holds no marker.
- PNG: Pillow's verify reads the chunks up to IEND (a zero tail is a broken chunk); the IEND
  chunk must be there whole, its CRC included (verify forgives a missing CRC).
- WebP: the RIFF size must fit in the file, and compressed data never ends in a long run of
  zero bytes.
- HEIF and AVIF (ISO media files): the top-level boxes must fit in the file, and the media
  data (`mdat`, last) must not end in a long run of zero bytes: libheif and libavif decode a
  zero-filled half without an error. (A shorter zero run is legitimate: an Exif item may end
  the data with a few zeros.)
- TIFF, BMP and camera RAW: the declared sizes must fit (Pillow and LibRaw check them).
  Uncompressed pixels may legitimately end in zeros (black rows), so a long zero tail only
  makes the file wait (`incomplete_image_seconds`) in case it is still being written, then it
  is taken. These have no end marker at all: what guards them is that a file still open for
  writing is not settled (hotfolder/writers.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

# A marker inside entropy-coded data: FF, then neither a stuffed 00, a restart marker, nor fill.
_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_EOI: Final = b"\xff\xd9"
# No compressed WebP, HEIF or AVIF ends in this many zero bytes; a preallocated, half-written
# one does.
ZERO_TAIL_BYTES: Final = 512
_IEND: Final = b"IEND"
_ISO_MEDIA: Final = ("HEIF", "AVIF")
# An uncompressed image ending in this many zero bytes (and an eighth of the file) waits a while.
RAW_ZERO_TAIL_BYTES: Final = 4096


@dataclass(frozen=True)
class Unfinished:
    """Why a file looks unfinished; `maybe_whole`: it may be a whole image after all."""

    problem: str
    maybe_whole: bool = False


def unfinished(data: bytes, fmt: str) -> Unfinished | None:
    """None when the file ends as its format says it must; else why it seems unfinished."""
    if fmt in ("JPEG", "MPO"):
        if data.rstrip(b"\0").endswith(_EOI) or _jpeg_has_eoi(data):
            return None
        return Unfinished("does not reach its end-of-image marker (FF D9)")
    if fmt == "PNG":
        end = data.rfind(_IEND)
        if end < 4 or len(data) < end + len(_IEND) + 4:
            return Unfinished("does not reach the end of its IEND chunk")
        return None
    zeros = len(data) - len(data.rstrip(b"\0"))
    if fmt == "WEBP" or fmt in _ISO_MEDIA:
        declared = _declared_size(data, fmt)
        if declared > len(data):
            return Unfinished(f"is {len(data):,} bytes of the {declared:,} its header declares")
        if zeros >= ZERO_TAIL_BYTES:
            return Unfinished(f"ends in {zeros:,} zero bytes where its data should be")
    if fmt in ("TIFF", "RAW"):
        declared = _tiff_data_end(data)
        if declared > len(data):
            return Unfinished(f"is {len(data):,} bytes of the {declared:,} its strips declare")
    if fmt in ("TIFF", "BMP", "DIB", "RAW") and zeros >= max(RAW_ZERO_TAIL_BYTES, len(data) // 8):
        return Unfinished(f"ends in {zeros:,} zero bytes", maybe_whole=True)
    return None


def _declared_size(data: bytes, fmt: str) -> int:
    """How long the file says it is: WebP's RIFF size, or the ISO media boxes laid end to end."""
    if fmt == "WEBP":
        return int.from_bytes(data[4:8], "little") + 8
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:  # the last box, to the end of the file
            return len(data)
        if size < 8:
            return pos  # a zero-filled tail where the next box header should be
        pos += size
    return max(pos, len(data))


# TIFF tags whose values say where image data lies: (offsets, byte counts) pairs, and SubIFDs
# (where a DNG keeps its raw data). LibRaw forgives a DNG's last bytes missing.
_EXTENTS: Final = ((273, 279), (324, 325))
_SUB_IFDS: Final = 330
_TIFF_SIZES: Final = {3: 2, 4: 4, 13: 4}  # SHORT, LONG, IFD
_MAX_IFDS: Final = 64
ByteOrder = Literal["little", "big"]


def _tiff_data_end(data: bytes) -> int:
    """Where the last strip or tile of a (classic) TIFF-structured file ends; 0 if unknown."""
    order: ByteOrder
    if data[:4] == b"II*\0":
        order = "little"
    elif data[:4] == b"MM\0*":
        order = "big"
    else:
        return 0  # BigTIFF, or a RAW format of its own: its decoder checks its sizes
    queue, end = [int.from_bytes(data[4:8], order)], 0
    seen: set[int] = set()
    while queue and len(seen) < _MAX_IFDS:
        at = queue.pop()
        if at in seen or at + 2 > len(data):
            continue
        seen.add(at)
        tags = _ifd_values(data, at, order)
        for offsets, counts in _EXTENTS:
            for start, size in zip(tags.get(offsets, []), tags.get(counts, []), strict=False):
                end = max(end, start + size)
        queue += tags.get(_SUB_IFDS, [])
        link = at + 2 + 12 * int.from_bytes(data[at : at + 2], order)
        next_ifd = int.from_bytes(data[link : link + 4], order)
        if next_ifd:
            queue.append(next_ifd)
    return end


def _ifd_values(data: bytes, at: int, order: ByteOrder) -> dict[int, list[int]]:
    """The integer values of one IFD's SHORT, LONG and IFD entries (those that lie in the file)."""
    values: dict[int, list[int]] = {}
    for index in range(int.from_bytes(data[at : at + 2], order)):
        entry = at + 2 + 12 * index
        if entry + 12 > len(data):
            break
        tag = int.from_bytes(data[entry : entry + 2], order)
        width = _TIFF_SIZES.get(int.from_bytes(data[entry + 2 : entry + 4], order))
        if width is None:
            continue
        count = int.from_bytes(data[entry + 4 : entry + 8], order)
        where = entry + 8
        if count * width > 4:
            where = int.from_bytes(data[entry + 8 : entry + 12], order)
        raw = data[where : where + count * width]
        values[tag] = [int.from_bytes(raw[i : i + width], order) for i in range(0, len(raw), width)]
    return values


def _jpeg_has_eoi(data: bytes) -> bool:
    """Walk the segments from SOI, skipping each scan's entropy-coded data, to an EOI."""
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            return False  # zeros (or junk) where a marker must be
        while pos < end and data[pos] == 0xFF:
            pos += 1  # fill bytes
        if pos >= end:
            return False
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue  # markers without a length
        if pos + 2 > end:
            return False
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if marker == 0xDA:
            found = _MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()
    return False
