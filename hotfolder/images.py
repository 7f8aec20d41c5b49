"""Dropped images: check them before they become jobs, load them for the editor, encode results.

Every image is read into memory once (at most `limits.max_file_bytes`, without following
links) and decoded from there, so a file swapped or growing underneath cannot change
what was checked. Sizes are checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pillow_heif
from PIL import Image, ImageCms, features
from PIL.PngImagePlugin import PngInfo

from hotfolder import exifdata, fsops, rawfiles
from hotfolder.config import Limits
from hotfolder.endings import unfinished
from hotfolder.errors import IncompleteImage, MaybeIncomplete, Reason, Rejected
from hotfolder.layout import IMAGE_SUFFIXES

__all__ = [
    "IMAGE_SUFFIXES",
    "IncompleteImage",
    "MaybeIncomplete",
    "ProbedImage",
    "SourceImage",
    "encode_result",
    "load_for_edit",
    "probe",
    "probe_data",
    "read_metadata",
    "resize_to",
    "result_format",
    "supported_suffix",
]

# HEIF (iPhones) through pillow-heif's Pillow plugin; thumbnails, depth and auxiliary images
# are never decoded (less memory, fewer parsers). AVIF through Pillow's own plugin.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
AVIF_SUPPORTED = bool(features.check("avif"))

# Pillow format names each suffix may hold. MPO is a JPEG with extra frames (phone cameras);
# DIB is a BMP without its file header.
_FORMATS_FOR_SUFFIX: dict[str, tuple[str, ...]] = {
    ".jpg": ("JPEG", "MPO"),
    ".jpeg": ("JPEG", "MPO"),
    ".png": ("PNG",),
    ".webp": ("WEBP",),
    ".tif": ("TIFF",),
    ".tiff": ("TIFF",),
    ".bmp": ("BMP", "DIB"),
    ".heic": ("HEIF",),
    ".heif": ("HEIF",),
    ".avif": ("AVIF",),
}
_SUFFIX_FOR_FORMAT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "TIFF": ".tif",
    "BMP": ".bmp",
    "DIB": ".bmp",
    "HEIF": ".heic",
    "AVIF": ".avif",
}
# Only these plugins may identify a file: fewer parsers exposed to untrusted bytes. (MPO has
# no opener of its own; the JPEG opener returns MPO files.)
_OPENERS = (
    "JPEG",
    "PNG",
    "WEBP",
    "TIFF",
    "BMP",
    "DIB",
    "HEIF",
    *(("AVIF",) if AVIF_SUPPORTED else ()),
)
_FORMAT_NAMES = "JPEG, PNG, WebP, TIFF, BMP, HEIF or AVIF"
# output.format: same writes these formats as themselves, everything else as png.
_SAME_FORMAT = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp"}

# The first bytes of each supported format: a file that starts like one but does not open
# is most likely still being written, so it gets the benefit of the doubt (IncompleteImage).
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"BM",
)

# Modes _to_rgb converts faithfully; LAB and premultiplied La would come out wrong.
_SUPPORTED_MODES = frozenset(
    {
        "1",
        "L",
        "LA",
        "P",
        "PA",
        "RGB",
        "RGBA",
        "RGBa",
        "RGBX",
        "CMYK",
        "YCbCr",
        "HSV",
        "I",
        "I;16",
        "I;16L",
        "I;16B",
        "I;16N",
        "F",
    }
)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})

# What a corrupt or cut-off file makes Pillow's decoders raise (UnidentifiedImageError is an
# OSError). One bad file must never escape as an unexpected exception.
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)

# EXIF tags written into JPEG and WebP results.
_TAG_IMAGE_DESCRIPTION = 0x010E
_TAG_ORIENTATION = 0x0112
_TAG_SOFTWARE = 0x0131
_TAG_EXIF_IFD = 0x8769
_TAG_USER_COMMENT = 0x9286
_ASCII_COMMENT = b"ASCII\x00\x00\x00"  # the 8-byte character-code prefix of UserComment
_UNICODE_COMMENT = b"UNICODE\x00"

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ProbedImage:
    """What probe found: Pillow's format name and the stored size in pixels (before EXIF rotation)."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class SourceImage:
    """An input ready for the editor: RGB, upright, with its RGB ICC profile if it had one.

    `original_size` is the upright size before `limits.oversize: fit` scaled it down (None
    when it was not); `exif` the camera's EXIF worth keeping (exifdata.kept); `format` the
    input's format (Pillow's name, or RAW).
    """

    image: Image.Image
    size: tuple[int, int]
    icc_profile: bytes | None
    original_size: tuple[int, int] | None = None
    exif: bytes | None = None
    format: str = ""


class _QuietPillow:
    """Pillow on untrusted bytes: a decompression-bomb warning raises, other warnings stay
    quiet, on any number of threads at once.

    Pillow warns about oddities it recovers from (corrupt EXIF, truncated TIFF tags); those say
    nothing to the operator, and under warnings-as-errors they would escape as exceptions.
    The filters are process-wide state that `warnings.catch_warnings` saves and restores, so
    two threads each entering and leaving it could leave them changed for good. Here the first
    thread in sets them and the last one out restores them: decodes run side by side (Pillow
    lets go of the GIL while it decodes), where one lock around each made every decoder of
    the service, intake's and each device's, wait for the others.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: warnings.catch_warnings[None] | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                saved: warnings.catch_warnings[None] = warnings.catch_warnings(record=False)
                saved.__enter__()
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                self._saved = saved
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    saved, self._saved = self._saved, None
                    saved.__exit__(None, None, None)


_pillow_guard = _QuietPillow()


def _dims(width: int, height: int) -> str:
    return f"{width}\u00d7{height} px"  # the multiplication sign reads better than an x


def _bomb(name: str, width: int, height: int, limits: Limits) -> Rejected:
    return Rejected(
        Reason.invalid_image,
        f"{name} declares {_dims(width, height)}, far beyond the {limits.max_dimension} px limit: "
        "a decompression bomb; it was not decoded",
    )


# With `limits.oversize: fit` a camera-sized image is welcome; the cap is then Pillow's own
# decompression-bomb threshold (~89 MP: a 61 MP full-frame JPEG passes, 100 MP does not).
FIT_MAX_PIXELS = 89_478_485


def _max_pixels(limits: Limits) -> int:
    own = (4 * limits.max_dimension) ** 2
    return max(own, FIT_MAX_PIXELS) if limits.oversize == "fit" else own


def _read(path: Path, limits: Limits, *, raw: bool = False) -> bytes:
    """The file's bytes, within `max_file_bytes` (`max_raw_bytes` for a camera RAW file)."""
    try:
        return fsops.read_regular(path, limits.max_raw_bytes if raw else limits.max_file_bytes)
    except fsops.FileTooBig as e:
        if raw:
            message = (
                f"{path.name} is {e.size:,} bytes; the limit for camera RAW files is "
                f"{e.max_bytes:,} bytes (limits.max_raw_bytes); drop the camera's JPEG instead"
            )
        else:
            message = (
                f"{path.name} is {e.size:,} bytes; the limit is {e.max_bytes:,} bytes; "
                "save it smaller (downscale it or use JPEG or WebP) and drop it again"
            )
        raise Rejected(Reason.too_large, message) from e
    except fsops.NotARegularFile as e:
        raise Rejected(
            Reason.invalid_image,
            f"{path.name} is not a plain file (a link, folder or pipe); drop the image file itself",
        ) from e


def _open_checked(data: bytes, name: str, suffix: str, limits: Limits) -> Image.Image:
    """Open (header only) and check format, pixel count, size and mode; call inside _pillow_guard."""
    try:
        image = Image.open(io.BytesIO(data), formats=_OPENERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Rejected(
            Reason.invalid_image,
            f"{name} is a decompression bomb (Pillow: {e}); it was not decoded",
        ) from e
    except _DECODE_ERRORS as e:
        if (
            data.startswith(_SIGNATURES)
            or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
            or data[4:8] == b"ftyp"  # HEIF and AVIF: an ISO media file
        ):
            raise IncompleteImage(
                f"{name} starts like an image but cannot be read yet ({e}); it may still be copying"
            ) from e
        raise Rejected(
            Reason.invalid_image,
            f"{name} is not a {_FORMAT_NAMES} image; export it as one of those and drop it again",
        ) from e
    try:
        fmt = image.format or "unknown"
        if fmt not in _FORMATS_FOR_SUFFIX.get(suffix, ()):
            right = _SUFFIX_FOR_FORMAT.get(fmt, "its real type")
            raise Rejected(
                Reason.invalid_image,
                f"{name} contains {fmt} data but is named {suffix}; rename it to {right}",
            )
        width, height = image.size
        if width < 1 or height < 1:
            raise Rejected(Reason.invalid_image, f"{name} has no pixels ({_dims(width, height)})")
        # Far past the size limit means crafted, not merely big: say so, and never decode it.
        if width * height > _max_pixels(limits):
            raise _bomb(name, width, height, limits)
        too_big = width > limits.max_dimension or height > limits.max_dimension
        if too_big and limits.oversize == "reject":
            raise Rejected(
                Reason.too_large,
                f"{name} is {_dims(width, height)}; the limit is {limits.max_dimension} px per side; "
                f"downscale it to fit and drop it again",
            )
        if image.mode not in _SUPPORTED_MODES:
            raise Rejected(
                Reason.invalid_image,
                f"{name} uses the colour mode {image.mode}, which cannot be converted to RGB "
                "faithfully; save it as RGB and drop it again",
            )
    except BaseException:
        image.close()
        raise
    return image


def _decode_fully(image: Image.Image, data: bytes, name: str) -> None:
    """Decode the (first frame's) pixels, then verify the whole file on a fresh open.

    A truncated JPEG fails load(); a PNG cut before IEND loads fine but fails verify(). Only
    the PNG reader has a verify() that checks anything (each chunk's CRC, up to IEND); for the
    other formats it would only parse the header a second time.
    """
    try:
        image.load()
        if image.format == "PNG":
            with Image.open(io.BytesIO(data), formats=_OPENERS) as again:
                again.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Rejected(
            Reason.invalid_image, f"{name} is a decompression bomb ({e}); it was not decoded"
        ) from e
    except _DECODE_ERRORS as e:
        raise IncompleteImage(
            f"{name} does not decode completely ({e}); it may still be copying or be damaged"
        ) from e


def probe(path: Path, *, limits: Limits) -> ProbedImage:
    """Check a dropped image completely: plain file, size, real format, dimensions, full decode.

    Raises Rejected (too_large, invalid_image or unsupported_type), or IncompleteImage when it
    looks like an image that is not all there yet. Other OSErrors (the file vanished) propagate.
    """
    suffix = supported_suffix(path)
    if rawfiles.is_raw(suffix):
        raw = _read(path, limits, raw=True)
        width, height = rawfiles.check(raw, path.name, suffix)
        _check_ending(raw, "RAW", path.name)
        return ProbedImage(format="RAW", width=width, height=height)
    return probe_data(_read(path, limits), name=path.name, suffix=suffix, limits=limits)


def probe_data(data: bytes, *, name: str, suffix: str, limits: Limits) -> ProbedImage:
    """`probe` on bytes already read (a reference image's copy): the same checks but the file's.

    `suffix` is the lower-case extension the bytes were named with (RAW is not read here).
    """
    with _pillow_guard():
        image = _open_checked(data, name, suffix, limits)
        with image:
            fmt = image.format or "unknown"
            width, height = image.size
            if fmt in ("JPEG", "MPO"):
                # Proving it whole needs every entropy-coded byte read, not full-size pixels:
                # scaled by 1/8, libjpeg still reads and checks the whole scan, in ~3/4 of the
                # time (the editor's decode, `load_for_edit`, stays full size).
                image.draft(None, (max(1, width // 8), max(1, height // 8)))
            _decode_fully(image, data, name)
    _check_ending(data, fmt, name)
    return ProbedImage(format=fmt, width=width, height=height)


def _check_ending(data: bytes, fmt: str, name: str) -> None:
    """Raise IncompleteImage (MaybeIncomplete) unless the file ends as its format says."""
    short = unfinished(data, fmt)
    if short is not None:
        kind = MaybeIncomplete if short.maybe_whole else IncompleteImage
        raise kind(f"{name} {short.problem}; it may still be copying")


def supported_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise Rejected(
            Reason.unsupported_type,
            f"{path.name} is not a supported image type; use one of {', '.join(IMAGE_SUFFIXES)}",
        )
    if suffix == ".avif" and not AVIF_SUPPORTED:
        raise Rejected(
            Reason.unsupported_type,
            f"{path.name}: this installation's Pillow was built without AVIF support; "
            "export the picture as HEIC or JPEG and drop it again",
        )
    return suffix


def _icc_colour_space(profile: bytes | None) -> bytes | None:
    """The data colour space of an ICC profile (b"RGB ", b"CMYK", b"GRAY", …) if it is usable."""
    if not profile or len(profile) < 128:
        return None
    # Device links, abstract and named-colour profiles describe no image colour space.
    if profile[12:16] in (b"link", b"abst", b"nmcl"):
        return None
    return profile[16:20]


def _gray_to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float grey to 0..255; Pillow's convert would just clip."""
    if image.mode == "F":
        _low, high = cast(tuple[float, float], image.getextrema())
        scale = 255.0 if float(high) <= 1.0 else 1.0
        return image.point(lambda v: v * scale).convert("L")
    wide = image.convert("I") if image.mode != "I" else image
    if image.mode.startswith("I;16"):
        return wide.point(lambda v: v / 257).convert("L")
    low, high = cast(tuple[int, int], wide.getextrema())
    if low >= 0 and high <= 255:
        return wide.convert("L")
    if low >= 0 and high <= 65535:
        return wide.point(lambda v: v / 257).convert("L")
    span = high - low
    return wide.point(lambda v: (v - low) * 255 / span).convert("L")


def _to_rgb(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert any supported mode to RGB; keep the ICC profile only if it still describes the pixels."""
    space = _icc_colour_space(icc_profile)
    if image.mode == "CMYK" and space == b"CMYK" and icc_profile is not None:
        # Print files: a naive CMYK->RGB conversion is visibly off, the profile does it right.
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None
        if converted is not None:
            return converted, None  # untagged RGB is read as sRGB
    if image.mode in ("F", "I") or image.mode.startswith("I;16"):
        image = _gray_to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        # Transparent areas become white, as on paper, not black as a plain convert would give.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    return rgb, icc_profile if space == b"RGB " else None


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_TAG_ORIENTATION, 1)
    except _DECODE_ERRORS:
        # A damaged EXIF block should not cost the whole image; show it as stored.
        return 1
    return value if isinstance(value, int) else 1


def load_for_edit(path: Path, *, limits: Limits, whole: bool = False) -> SourceImage:
    """Load an image for the editor: first frame, EXIF orientation applied, RGB on white.

    Runs the same checks as `probe` (the file may have changed since), raising the same errors;
    `whole`: also its check of the file's end, so this can stand in for `probe` (intake).
    """
    suffix = supported_suffix(path)
    if rawfiles.is_raw(suffix):
        data = _read(path, limits, raw=True)
        developed = rawfiles.develop(data, path.name, suffix, limits)
        # LibRaw applied the camera's rotation and made sRGB (untagged RGB reads as sRGB).
        exif = exifdata.kept(exifdata.from_tiff(data))
        return SourceImage(developed, developed.size, None, exif=exif, format="RAW")
    data = _read(path, limits)
    with _pillow_guard():
        image = _open_checked(data, path.name, suffix, limits)
        with image:
            fmt, stored = image.format or "", image.size
            target = rawfiles.fit_size(stored, limits.max_dimension)
            if target != image.size and fmt in ("JPEG", "MPO"):
                # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding: far less time and memory.
                image.draft("RGB", target)
            _decode_fully(image, data, path.name)
            icc = image.info.get("icc_profile")
            orientation = _orientation(image)
            exif = exifdata.kept(_exif_of(image))
            rgb, icc_out = _to_rgb(image, icc if isinstance(icc, bytes) else None)
    if whole:
        _check_ending(data, fmt, path.name)
    return _upright(rgb, orientation, (stored, target), icc_out, exif=exif, fmt=fmt)


def _exif_of(image: Image.Image) -> Image.Exif | None:
    try:
        return image.getexif()
    except _DECODE_ERRORS:
        return None  # damaged EXIF costs the metadata, never the image


def _upright(
    rgb: Image.Image,
    orientation: int,
    sizes: tuple[tuple[int, int], tuple[int, int]],
    icc: bytes | None,
    *,
    exif: bytes | None,
    fmt: str,
) -> SourceImage:
    """Fitted (limits.oversize: fit) and turned upright; the original size remembered.

    `sizes`: the stored size and the size that fits (the same when it already fits).
    """
    stored, target = sizes
    original = None
    if target != stored:
        original = stored
        rgb = resize_to(rgb, target)
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        rgb = rgb.transpose(method)
        if orientation >= 5 and original is not None:
            original = (original[1], original[0])
    # Nothing of the source's metadata travels with the pixels; the result gets its own.
    rgb.info.clear()
    return SourceImage(rgb, rgb.size, icc, original_size=original, exif=exif, format=fmt)


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize with Lanczos; the same image when it already has that size."""
    if image.size == size:
        return image
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {_dims(width, height)}")
    return image.resize(size, Image.Resampling.LANCZOS)


def _exif_bytes(metadata: Mapping[str, str], camera: bytes | None) -> bytes:
    exif = exifdata.for_result(camera)
    exif[_TAG_SOFTWARE] = "hotfolder"
    instruction = metadata.get("instruction")
    if instruction:
        # Pillow would write str as ASCII with "?" for the rest; UTF-8 bytes keep it readable
        # in exiftool and friends. The JSON in UserComment is the exact copy.
        exif[_TAG_IMAGE_DESCRIPTION] = instruction.encode("utf-8")
    payload = json.dumps(dict(metadata), ensure_ascii=True, sort_keys=True)
    exif.get_ifd(_TAG_EXIF_IFD)[_TAG_USER_COMMENT] = _ASCII_COMMENT + payload.encode("ascii")
    return exif.tobytes()


def encode_result(
    image: Image.Image,
    *,
    fmt: str,
    quality: int,
    icc_profile: bytes | None,
    metadata: Mapping[str, str],
    camera_exif: bytes | None = None,
    buffer: EncodeBuffer | None = None,
) -> bytes:
    """Encode a result as png, jpeg or webp with the ICC profile and hotfolder's metadata
    (in `buffer`, kept by an encoding thread for its next result, else in a new one).

    `camera_exif` (exifdata.kept) is carried over in all three formats (PNG: an eXIf chunk).
    PNG: one iTXt chunk per metadata key. JPEG/WebP: EXIF with the metadata as JSON in
    UserComment, the instruction in ImageDescription and Software = hotfolder.
    `quality` applies to jpeg and webp.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    params: dict[str, Any] = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    with contextlib.ExitStack() as stack:
        if buffer is None:
            buffer = stack.enter_context(EncodeBuffer())
        out = stack.enter_context(buffer.file())
        _save_result(
            rgb,
            out,
            fmt=fmt,
            quality=quality,
            metadata=metadata,
            camera_exif=camera_exif,
            params=params,
        )
        size = out.tell()
        out.seek(0)
        return out.read(size)


class EncodeBuffer:
    """Where results are encoded: a file in memory with a descriptor, kept for the next
    result by its owner (a slot's encoding thread) and closed with it.

    Pillow encodes into a file with a descriptor with the GIL released, but into a BytesIO
    holding it throughout: a 1-megapixel JPEG held every other thread of the process for
    4 ms (a 24-megapixel one for ~100 ms) — the slot's next edit, the dispatcher, intake
    (issue 14, per-job overhead). Kept, its memory is not allocated again for every result
    (0.4 ms a megapixel); it never keeps more than KEEP_ENCODE_BYTES between results.
    """

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None

    def __enter__(self) -> EncodeBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @contextlib.contextmanager
    def file(self) -> Iterator[IO[bytes]]:
        if not hasattr(os, "memfd_create"):  # not Linux
            yield io.BytesIO()
            return
        if self._file is None:
            self._file = os.fdopen(os.memfd_create("hotfolder-encode", os.MFD_CLOEXEC), "w+b")
        out = self._file
        out.seek(0)
        try:
            yield out
        finally:
            if out.seek(0, os.SEEK_END) > KEEP_ENCODE_BYTES:
                out.truncate(0)


# What an encode buffer may keep between results (a 24-megapixel JPEG is ~10 MB).
KEEP_ENCODE_BYTES = 32 * 1024 * 1024


def _save_result(
    rgb: Image.Image,
    out: IO[bytes],
    *,
    fmt: str,
    quality: int,
    metadata: Mapping[str, str],
    camera_exif: bytes | None,
    params: dict[str, Any],
) -> None:
    if fmt == "png":
        info = PngInfo()
        for key, value in metadata.items():
            # PNG keywords are 1-79 Latin-1 characters.
            if not 1 <= len(key) <= 79 or not key.isprintable() or not key.isascii():
                raise ValueError(f"metadata key {key!r} cannot be a PNG keyword")
            info.add_itxt(key, value)
        if camera_exif:
            params["exif"] = exifdata.for_result(camera_exif).tobytes()
        rgb.save(out, "PNG", pnginfo=info, **params)
    elif fmt == "jpeg":
        rgb.save(out, "JPEG", quality=quality, exif=_exif_bytes(metadata, camera_exif), **params)
    elif fmt == "webp":
        rgb.save(out, "WEBP", quality=quality, exif=_exif_bytes(metadata, camera_exif), **params)
    else:
        raise ValueError(f"cannot encode {fmt!r}; use png, jpeg or webp")


def result_format(requested: str, source_format: str) -> str:
    """`output.format` made concrete: `same` is the input's format where it can be written."""
    if requested != "same":
        return requested
    return _SAME_FORMAT.get(source_format, "png")


def _decode_user_comment(raw: object) -> dict[str, str]:
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    if not isinstance(raw, bytes):
        return {}
    prefix, body = raw[:8], raw[8:]
    try:
        if prefix == _UNICODE_COMMENT:
            text = body.decode("utf-16")
        elif prefix == _ASCII_COMMENT:
            text = body.decode("ascii")
        else:
            text = raw.decode("utf-8")
        payload = json.loads(text.rstrip("\x00 "))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(payload, dict):
        return {}
    return {str(key): str(value) for key, value in payload.items()}


def read_metadata(data: bytes) -> dict[str, str]:
    """The metadata `encode_result` wrote into an image; `{}` when there is none.

    Raises PIL.UnidentifiedImageError when `data` is not an image.
    """
    with _pillow_guard(), Image.open(io.BytesIO(data), formats=_OPENERS) as image:
        if image.format == "PNG":
            text: Mapping[str, Any] = getattr(image, "text", {})
            return {str(key): str(value) for key, value in text.items()}
        try:
            comment = image.getexif().get_ifd(_TAG_EXIF_IFD).get(_TAG_USER_COMMENT)
        except _DECODE_ERRORS:
            return {}
        return _decode_user_comment(comment)
