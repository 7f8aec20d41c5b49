"""Checking dropped images, loading them for the editor, encoding results (SPEC: "Limits", "Results")."""

from __future__ import annotations

import io
import json
import os
import struct
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from hotfolder.config import Limits
from hotfolder.errors import Reason, Rejected
from hotfolder.images import (
    IMAGE_SUFFIXES,
    IncompleteImage,
    ProbedImage,
    SourceImage,
    encode_result,
    load_for_edit,
    probe,
    read_metadata,
    resize_to,
)

LIMITS = Limits()
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
INSTRUCTION = "Mach den Himmel blau ☁ — 空を青くして"


def noise(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A picture with detail, so encoders produce realistic, non-trivial files."""
    return Image.merge(
        "RGB",
        [
            Image.effect_noise(size, 60),
            Image.linear_gradient("L").resize(size),
            Image.new("L", size, 90),
        ],
    )


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def rejection(path: Path, limits: Limits = LIMITS) -> Rejected:
    with pytest.raises(Rejected) as info:
        probe(path, limits=limits)
    return info.value


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int, *, with_pixels: bool) -> bytes:
    """A 1-bit grey PNG of the given size; with pixels, a real all-black image that compresses to little."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    parts = []
    if with_pixels:
        rows_per_block = 1000
        block = (b"\x00" * (1 + (width + 7) // 8)) * rows_per_block
        for _ in range(height // rows_per_block):
            parts.append(compressor.compress(block))
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if any pixel data gets decoded."""

    def refuse(self: ImageFile.ImageFile) -> Any:
        raise AssertionError(f"decoded a {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    yield


# --- probe: good files -----------------------------------------------------------------------


def test_suffixes() -> None:
    expected = (
        *(".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"),
        *(".heic", ".heif", ".avif"),
        *(".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"),
    )
    assert expected == IMAGE_SUFFIXES


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("JPEG", "a.jpg"),
        ("JPEG", "a.JPG"),
        ("JPEG", "a.jpeg"),
        ("JPEG", "a.Jpeg"),
        ("PNG", "a.png"),
        ("PNG", "a.PNG"),
        ("WEBP", "a.webp"),
        ("WEBP", "a.WEBP"),
        ("TIFF", "a.tif"),
        ("TIFF", "a.TIFF"),
        ("BMP", "a.bmp"),
        ("BMP", "a.BMP"),
    ],
)
def test_probe_accepts_each_format_in_any_case(tmp_path: Path, fmt: str, name: str) -> None:
    path = write(tmp_path, name, encoded(noise((64, 48)), fmt))
    assert probe(path, limits=LIMITS) == ProbedImage(format=fmt, width=64, height=48)


def test_probe_accepts_mpo_as_jpg(tmp_path: Path) -> None:
    image = noise()
    path = write(tmp_path, "a.jpg", encoded(image, "MPO", save_all=True, append_images=[image]))
    assert probe(path, limits=LIMITS).format == "MPO"


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "anim.png"), ("WEBP", "anim.webp")])
def test_animated_images_use_the_first_frame(tmp_path: Path, fmt: str, name: str) -> None:
    first = Image.new("RGB", (32, 32), (255, 0, 0))
    second = Image.new("RGB", (32, 32), (0, 0, 255))
    data = encoded(first, fmt, save_all=True, append_images=[second], lossless=True)
    path = write(tmp_path, name, data)
    assert probe(path, limits=LIMITS).width == 32
    assert load_for_edit(path, limits=LIMITS).image.getpixel((16, 16)) == (255, 0, 0)


def test_probe_at_the_size_limit(tmp_path: Path) -> None:
    limits = Limits(max_dimension=100)
    path = write(tmp_path, "a.png", encoded(noise((100, 100)), "PNG"))
    assert probe(path, limits=limits) == ProbedImage("PNG", 100, 100)


# --- probe: incomplete files -----------------------------------------------------------------


def test_truncated_jpeg_is_incomplete(tmp_path: Path) -> None:
    data = encoded(noise((256, 256)), "JPEG")
    path = write(tmp_path, "a.jpg", data[: len(data) * 2 // 3])
    with pytest.raises(IncompleteImage, match=r"a\.jpg does not decode completely"):
        probe(path, limits=LIMITS)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("kept", [0.2, 0.5, 0.8, 0.98])
def test_a_jpeg_cut_short_fails_the_reduced_decode_too(
    tmp_path: Path, progressive: bool, kept: float
) -> None:
    """probe decodes JPEGs scaled by 1/8: it must still read every entropy-coded byte, so the
    decode itself (its message, not the end-marker check after it) finds the cut."""
    out = io.BytesIO()
    noise((1024, 768)).save(out, "JPEG", quality=90, progressive=progressive)
    data = out.getvalue()
    path = write(tmp_path, "a.jpg", data[: int(len(data) * kept)])
    with pytest.raises(IncompleteImage, match=r"a\.jpg does not decode completely"):
        probe(path, limits=LIMITS)


def test_jpeg_without_end_marker_is_incomplete(tmp_path: Path) -> None:
    data = encoded(noise((256, 256)), "JPEG")
    path = write(tmp_path, "a.jpg", data[:-2])
    with pytest.raises(IncompleteImage):
        probe(path, limits=LIMITS)


def test_png_cut_before_iend_is_incomplete(tmp_path: Path) -> None:
    data = encoded(noise((128, 128)), "PNG")
    cut = data[: data.rindex(b"IEND") - 4]
    # The pixels are all there: load() alone passes, only verify() notices.
    with Image.open(io.BytesIO(cut)) as image:
        image.load()
    path = write(tmp_path, "a.png", cut)
    with pytest.raises(IncompleteImage):
        probe(path, limits=LIMITS)


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF", "BMP"])
def test_other_truncated_formats_are_incomplete(tmp_path: Path, fmt: str) -> None:
    data = encoded(noise((128, 128)), fmt)
    path = write(tmp_path, f"a.{fmt.lower()}", data[: len(data) // 2])
    with pytest.raises(IncompleteImage):
        probe(path, limits=LIMITS)


def test_only_the_first_bytes_of_an_image_are_incomplete(tmp_path: Path) -> None:
    # A copy that has written only the signature so far must get the benefit of the doubt.
    path = write(tmp_path, "a.png", encoded(noise(), "PNG")[:10])
    with pytest.raises(IncompleteImage):
        probe(path, limits=LIMITS)


# --- probe: bad files ------------------------------------------------------------------------


def test_random_bytes_are_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jpg", bytes(range(256)) * 40)
    problem = rejection(path)
    assert problem.code is Reason.invalid_image
    assert problem.message.startswith(
        "a.jpg is not a JPEG, PNG, WebP, TIFF, BMP, HEIF or AVIF image"
    )


def test_empty_file_is_invalid(tmp_path: Path) -> None:
    assert rejection(write(tmp_path, "a.png", b"")).code is Reason.invalid_image


def test_gif_is_not_accepted_even_if_named_jpg(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jpg", encoded(noise(), "GIF"))
    assert rejection(path).code is Reason.invalid_image


@pytest.mark.parametrize(
    ("fmt", "name", "message"),
    [
        ("PNG", "IMG_1.jpg", "IMG_1.jpg contains PNG data but is named .jpg; rename it to .png"),
        ("JPEG", "IMG_1.PNG", "IMG_1.PNG contains JPEG data but is named .png; rename it to .jpg"),
        ("BMP", "IMG_1.tif", "IMG_1.tif contains BMP data but is named .tif; rename it to .bmp"),
        (
            "WEBP",
            "IMG_1.jpeg",
            "IMG_1.jpeg contains WEBP data but is named .jpeg; rename it to .webp",
        ),
    ],
)
def test_format_lie_is_invalid(tmp_path: Path, fmt: str, name: str, message: str) -> None:
    problem = rejection(write(tmp_path, name, encoded(noise(), fmt)))
    assert problem.code is Reason.invalid_image
    assert problem.message == message


@pytest.mark.timeout(30)
def test_bomb_is_rejected_quickly_without_decoding(tmp_path: Path, no_decoding: None) -> None:
    data = bomb_png(30_000, 30_000, with_pixels=True)
    assert len(data) < 1_000_000  # small enough to pass the file-size limit
    path = write(tmp_path, "bomb.png", data)
    started = time.perf_counter()
    problem = rejection(path)
    assert time.perf_counter() - started < 1.0
    assert problem.code is Reason.invalid_image
    assert "decompression bomb" in problem.message


def test_bomb_in_pillows_warning_range_does_not_warn(tmp_path: Path, no_decoding: None) -> None:
    # 10000x10000 is above Pillow's MAX_IMAGE_PIXELS but below its error threshold: Pillow warns.
    path = write(tmp_path, "bomb.png", bomb_png(10_000, 10_000, with_pixels=False))
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = rejection(path)
    assert caught == []
    assert warnings.filters == filters_before
    assert problem.code is Reason.invalid_image
    assert "decompression bomb" in problem.message


def test_bomb_by_our_own_rule(tmp_path: Path, no_decoding: None) -> None:
    # Far below Pillow's thresholds but more than (4 * max_dimension)^2 pixels.
    path = write(tmp_path, "a.png", bomb_png(1000, 1000, with_pixels=False))
    problem = rejection(path, Limits(max_dimension=64))
    assert problem.code is Reason.invalid_image
    assert "a.png declares 1000\u00d71000 px" in problem.message
    assert "decompression bomb" in problem.message


def test_too_wide_is_too_large(tmp_path: Path, no_decoding: None) -> None:
    path = write(tmp_path, "wide.jpg", encoded(Image.new("RGB", (3000, 100)), "JPEG"))
    problem = rejection(path)
    assert problem.code is Reason.too_large
    assert problem.message.startswith(
        "wide.jpg is 3000\u00d7100 px; the limit is 2048 px per side; downscale it"
    )


def test_too_tall_is_too_large(tmp_path: Path) -> None:
    path = write(tmp_path, "tall.png", encoded(Image.new("L", (10, 101)), "PNG"))
    assert rejection(path, Limits(max_dimension=100)).code is Reason.too_large


def test_file_over_the_byte_limit_is_too_large(tmp_path: Path) -> None:
    path = write(tmp_path, "a.png", encoded(noise((128, 128)), "PNG"))
    problem = rejection(path, Limits(max_file_bytes=1_000))
    assert problem.code is Reason.too_large
    size = path.stat().st_size
    assert problem.message.startswith(f"a.png is {size:,} bytes; the limit is 1,000 bytes; ")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "a.gif", encoded(noise(), "GIF"))
    assert rejection(path).code is Reason.unsupported_type


def test_symlink_is_rejected(tmp_path: Path) -> None:
    real = write(tmp_path, "real.png", encoded(noise(), "PNG"))
    link = tmp_path / "a.png"
    link.symlink_to(real)
    problem = rejection(link)
    assert problem.code is Reason.invalid_image
    assert "not a plain file" in problem.message


@pytest.mark.timeout(10)
def test_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "a.jpg"
    os.mkfifo(fifo)
    assert rejection(fifo).code is Reason.invalid_image


def test_directory_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    assert rejection(folder).code is Reason.invalid_image


def test_vanished_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "gone.png", limits=LIMITS)


# --- load_for_edit ---------------------------------------------------------------------------


def load_from(tmp_path: Path, image: Image.Image, name: str, **params: Any) -> SourceImage:
    fmt = {"png": "PNG", "tif": "TIFF", "jpg": "JPEG", "webp": "WEBP"}[name.rsplit(".", 1)[1]]
    path = write(tmp_path, name, encoded(image, fmt, **params))
    source = load_for_edit(path, limits=LIMITS)
    assert source.image.mode == "RGB"
    assert source.size == source.image.size
    return source


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 2) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(actual, expected, strict=True))


def test_rgb_stays_exact(tmp_path: Path) -> None:
    image = noise()
    source = load_from(tmp_path, image, "a.png")
    assert source.image.tobytes() == image.tobytes()
    assert source.icc_profile is None


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 128))
    pixels = load_from(tmp_path, image, "a.png").image
    assert pixels.getpixel((0, 0)) == (255, 255, 255)
    assert close(pixels.getpixel((1, 0)), (255, 127, 127))  # type: ignore[arg-type]


def test_la_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("LA", (2, 1), (0, 0))
    image.putpixel((1, 0), (0, 255))
    pixels = load_from(tmp_path, image, "a.png").image
    assert [pixels.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (0, 0, 0)]


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    pixels = load_from(tmp_path, image, "a.png", transparency=0).image
    assert [pixels.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (0, 0, 255)]


def test_palette_without_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (1, 1))
    image.putpalette([10, 200, 30])
    assert load_from(tmp_path, image, "a.png").image.getpixel((0, 0)) == (10, 200, 30)


def test_grey_and_bilevel(tmp_path: Path) -> None:
    assert load_from(tmp_path, Image.new("L", (1, 1), 77), "a.png").image.getpixel((0, 0)) == (
        77,
        77,
        77,
    )
    assert load_from(tmp_path, Image.new("1", (1, 1), 1), "b.png").image.getpixel((0, 0)) == (
        255,
        255,
        255,
    )


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 128 * 257, 65535)):
        image.putpixel((x, 0), value)
    pixels = load_from(tmp_path, image, "a.png").image
    assert [pixels.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255,) * 3]


def test_thirty_two_bit_and_float_grey(tmp_path: Path) -> None:
    wide = Image.new("I", (2, 1))
    wide.putpixel((1, 0), 65535)
    pixels = load_from(tmp_path, wide, "a.tif").image
    assert [pixels.getpixel((x, 0)) for x in range(2)] == [(0, 0, 0), (255, 255, 255)]
    real = Image.new("F", (2, 1), 0.0)
    real.putpixel((1, 0), 0.5)
    pixels = load_from(tmp_path, real, "b.tif").image
    assert close(pixels.getpixel((1, 0)), (127, 127, 127))  # type: ignore[arg-type]


def test_cmyk(tmp_path: Path) -> None:
    red = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    assert load_from(tmp_path, red, "a.tif").image.getpixel((4, 4)) == (255, 0, 0)
    pixel = load_from(tmp_path, red, "b.jpg", quality=95).image.getpixel((4, 4))
    assert close(pixel, (255, 0, 0), tolerance=8)  # type: ignore[arg-type]


def test_non_rgb_profile_is_dropped(tmp_path: Path) -> None:
    # A grey and a CMYK profile (header patched): the output is RGB, so neither may travel along.
    grey = SRGB[:16] + b"GRAY" + SRGB[20:]
    cmyk = SRGB[:16] + b"CMYK" + SRGB[20:]
    source = load_from(tmp_path, Image.new("L", (4, 4), 40), "a.png", icc_profile=grey)
    assert source.icc_profile is None
    source = load_from(
        tmp_path, Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "b.tif", icc_profile=cmyk
    )
    assert source.icc_profile is None
    assert source.image.getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize("name", ["a.png", "a.jpg", "a.webp", "a.tif"])
def test_rgb_profile_is_kept(tmp_path: Path, name: str) -> None:
    assert load_from(tmp_path, noise(), name, icc_profile=SRGB).icc_profile == SRGB


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 10))
    image.paste((0, 255, 0), (0, 10, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write(tmp_path, "a.png", encoded(image, "PNG", exif=exif.tobytes()))
    with Image.open(path) as stored:
        expected = ImageOps.exif_transpose(stored).convert("RGB")
    source = load_for_edit(path, limits=LIMITS)
    assert source.size == expected.size == ((40, 20) if orientation < 5 else (20, 40))
    assert source.image.tobytes() == expected.tobytes()


def test_exif_orientation_in_jpeg(tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; shown turned 90° clockwise
    source = load_from(tmp_path, image, "a.jpg", exif=exif.tobytes(), quality=95)
    assert source.size == (32, 64)
    assert close(source.image.getpixel((16, 4)), (255, 0, 0), tolerance=8)  # type: ignore[arg-type]
    assert close(source.image.getpixel((16, 60)), (0, 0, 255), tolerance=8)  # type: ignore[arg-type]


def test_load_for_edit_repeats_the_checks(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jpg", encoded(noise(), "PNG"))
    with pytest.raises(Rejected) as info:
        load_for_edit(path, limits=LIMITS)
    assert info.value.code is Reason.invalid_image
    data = encoded(noise((128, 128)), "JPEG")
    path = write(tmp_path, "b.jpg", data[: len(data) // 2])
    with pytest.raises(IncompleteImage):
        load_for_edit(path, limits=LIMITS)


# --- resize_to -------------------------------------------------------------------------------


def test_resize_to() -> None:
    image = noise((64, 48))
    assert resize_to(image, (64, 48)) is image
    resized = resize_to(image, (32, 24))
    assert resized.size == (32, 24)
    assert resized.mode == "RGB"
    with pytest.raises(ValueError, match="cannot resize"):
        resize_to(image, (0, 10))


# --- encode_result and read_metadata ---------------------------------------------------------


METADATA = {"instruction": INSTRUCTION, "preset": "qwen-4step", "seed": "42", "model": "identity"}


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_metadata_and_profile_round_trip(fmt: str) -> None:
    data = encode_result(noise(), fmt=fmt, quality=90, icc_profile=SRGB, metadata=METADATA)
    assert read_metadata(data) == METADATA
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == fmt.upper()
        assert image.info.get("icc_profile") == SRGB
        assert image.size == (64, 48)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_exif_fields_for_other_tools(fmt: str) -> None:
    data = encode_result(noise(), fmt=fmt, quality=90, icc_profile=None, metadata=METADATA)
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        assert exif[0x0131] == "hotfolder"
        # Pillow reads ASCII tags as Latin-1; the bytes themselves are UTF-8.
        assert exif[0x010E].encode("latin-1").decode("utf-8") == INSTRUCTION
        comment = exif.get_ifd(0x8769)[0x9286]
        assert comment.startswith(b"ASCII\x00\x00\x00")
        assert json.loads(comment[8:]) == METADATA
        assert "icc_profile" not in image.info


def test_png_is_lossless_with_one_itxt_chunk_per_key() -> None:
    image = noise()
    data = encode_result(image, fmt="png", quality=1, icc_profile=None, metadata=METADATA)
    for key in METADATA:
        assert b"iTXt" + key.encode() + b"\x00" in data
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.convert("RGB").tobytes() == image.tobytes()


def test_quality_is_used() -> None:
    image = noise((128, 128))
    low = encode_result(image, fmt="jpeg", quality=10, icc_profile=None, metadata={})
    high = encode_result(image, fmt="jpeg", quality=95, icc_profile=None, metadata={})
    assert len(low) < len(high)


def test_encode_converts_to_rgb() -> None:
    data = encode_result(
        Image.new("RGBA", (4, 4), (1, 2, 3, 4)),
        fmt="jpeg",
        quality=90,
        icc_profile=None,
        metadata={},
    )
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB"


def test_encode_refuses_unknown_format() -> None:
    with pytest.raises(ValueError, match="cannot encode 'gif'"):
        encode_result(noise(), fmt="gif", quality=90, icc_profile=None, metadata={})


def test_read_metadata_without_metadata() -> None:
    assert read_metadata(encoded(noise(), "PNG")) == {}
    assert read_metadata(encoded(noise(), "JPEG")) == {}
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00not json"
    assert read_metadata(encoded(noise(), "JPEG", exif=exif.tobytes())) == {}


def test_decoders_on_other_threads_do_not_wait_for_each_other(tmp_path: Path) -> None:
    import threading

    from hotfolder.images import _pillow_guard

    path = tmp_path / "a.jpg"
    noise((320, 240)).save(path, "JPEG")
    filters_before = list(warnings.filters)
    inside, leave = threading.Event(), threading.Event()

    def hold_the_guard() -> None:
        with _pillow_guard():
            inside.set()
            leave.wait(60)

    holder = threading.Thread(target=hold_the_guard)
    holder.start()
    try:
        assert inside.wait(60)
        # One lock around every decode made this wait until the holder let go.
        probed: list[ProbedImage] = []
        other = threading.Thread(target=lambda: probed.append(probe(path, limits=LIMITS)))
        other.start()
        other.join(60)
        assert probed == [ProbedImage(format="JPEG", width=320, height=240)]
        # The quiet filters are in force while any decoder runs (pytest's own turn every
        # warning into an error) ...
        warnings.warn("Corrupt EXIF data", UserWarning, stacklevel=1)
    finally:
        leave.set()
        holder.join(60)
    # ... and the ones from before are back once the last one is done.
    assert list(warnings.filters) == filters_before
