"""Files still being written (issue 14): a preallocated file filled in later is not taken
until its format's own end is there (SPEC: "A file counts only once it is settled ... and
the image decodes completely")."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import samples
from PIL import Image
from support import ServiceProcess, has_status, wait_for, write_config, write_sidecar
from test_intake import Rig

from hotfolder import images
from hotfolder.config import Limits
from hotfolder.endings import unfinished

SUFFIXES = {"HEIF": "heic", "AVIF": "avif", "JPEG": "jpg"}


def noise(size: tuple[int, int] = (160, 120), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))


def encoded(fmt: str, image: Image.Image | None = None, **options: object) -> bytes:
    buffer = io.BytesIO()
    (image or noise()).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def half_zero(data: bytes) -> bytes:
    """What a preallocating copier leaves when it stalls halfway: the final size, zeros after."""
    half = len(data) // 2
    return data[:half] + b"\0" * (len(data) - half)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("PNG", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("HEIF", {}),
        ("HEIF", {"exif": samples.camera_exif().tobytes()}),  # an Exif item ends the data
        ("AVIF", {}),
        ("AVIF", {"exif": samples.camera_exif().tobytes()}),
    ],
)
def test_a_half_written_preallocated_file_is_incomplete(
    tmp_path: Path, fmt: str, options: dict[str, object]
) -> None:
    # libheif and libavif decode a zero-filled half without an error, as Pillow's JPEG does.
    data = encoded(fmt, **options)
    path = tmp_path / f"x.{SUFFIXES.get(fmt, fmt.lower())}"
    path.write_bytes(half_zero(data))
    with pytest.raises(images.IncompleteImage) as info:
        images.probe(path, limits=Limits())
    assert not isinstance(info.value, images.MaybeIncomplete)
    path.write_bytes(data)
    images.probe(path, limits=Limits())


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_an_uncompressed_zero_tail_only_waits(fmt: str) -> None:
    # Uncompressed pixels may end in black rows: such a file waits, then is taken.
    found = unfinished(half_zero(encoded(fmt)), fmt)
    assert found is not None and found.maybe_whole
    assert unfinished(encoded(fmt), fmt) is None


def test_a_raw_file_ending_in_zeros_only_waits(tmp_path: Path) -> None:
    data = samples.dng((160, 120))
    path = tmp_path / "x.dng"
    path.write_bytes(half_zero(data))
    with pytest.raises(images.MaybeIncomplete):
        images.probe(path, limits=Limits())
    path.write_bytes(data)
    assert images.probe(path, limits=Limits()).format == "RAW"


def test_a_raw_file_short_of_its_strips_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "x.dng"
    path.write_bytes(samples.dng((160, 120))[:-1])  # LibRaw itself forgives the missing byte
    with pytest.raises(images.IncompleteImage) as info:
        images.probe(path, limits=Limits())
    assert not isinstance(info.value, images.MaybeIncomplete)
    assert "its strips declare" in str(info.value)


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate", "packbits"])
def test_a_whole_tiff_reaches_its_strips(compression: str | None) -> None:
    data = encoded("TIFF", noise((300, 200)), compression=compression)  # several strips
    assert unfinished(data, "TIFF") is None


def test_a_png_must_reach_the_end_of_its_iend_chunk() -> None:
    data = encoded("PNG")
    assert unfinished(data, "PNG") is None
    assert unfinished(data + b"\0" * 100, "PNG") is None  # padding after IEND
    found = unfinished(data[:-1], "PNG")  # Pillow's verify forgives the missing CRC byte
    assert found is not None and "IEND" in found.problem


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_iso_media_boxes_must_fit_in_the_file(fmt: str) -> None:
    data = encoded(fmt)
    assert unfinished(data, fmt) is None
    found = unfinished(data[:-100], fmt)
    assert found is not None and "its header declares" in found.problem
    # A short zero run ends a whole file when an Exif item comes last: not a preallocated tail.
    assert unfinished(data + b"\0\0\0\x08free", fmt) is None


def test_what_may_follow_a_jpeg_end_marker() -> None:
    data = encoded("JPEG")
    assert unfinished(data + b"\0" * 4096, "JPEG") is None  # zero padding after EOI
    assert unfinished(data + b"\0\0\0\x18ftypmp42" + b"v" * 5000, "JPEG") is None  # motion photo
    assert unfinished(data[:-2], "JPEG") is not None
    # An EXIF thumbnail's own EOI (inside APP1) does not count as the image's end.
    exif = Image.Exif()
    exif[0x010E] = "x"
    thumb = encoded("JPEG", noise((32, 24)))
    with_thumb = encoded("JPEG", exif=exif.tobytes() + thumb)
    assert unfinished(with_thumb, "JPEG") is None
    assert unfinished(half_zero(with_thumb), "JPEG") is not None


def test_a_webp_shorter_than_its_header_says_is_incomplete() -> None:
    data = encoded("WEBP")
    found = unfinished(data[: len(data) - 10], "WEBP")
    assert found is not None and "its header declares" in found.problem


def test_intake_waits_for_the_rest_of_a_preallocated_jpeg(tmp_path: Path) -> None:
    rig = Rig(tmp_path, incomplete_image_seconds=60)
    data = encoded("JPEG")
    image = rig.inbox / "slow.jpg"
    with image.open("wb") as handle:
        handle.truncate(len(data))  # the copier sets the final size first
        handle.write(data[: len(data) // 2])
    write_sidecar(rig.inbox / "slow.yaml")
    rig.tick()
    rig.tick(2.5)
    rig.tick(10)  # settled long ago, and Pillow would decode it with a grey lower half
    assert rig.queued() == []
    with image.open("r+b") as handle:
        handle.seek(len(data) // 2)
        handle.write(data[len(data) // 2 :])
    rig.intake.note(image)
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["slow"]
    assert (rig.layout.pending / "slow.jpg").read_bytes() == data


def test_a_whole_bmp_whose_file_ends_in_black_rows_is_taken_after_the_wait(tmp_path: Path) -> None:
    rig = Rig(tmp_path, incomplete_image_seconds=20)
    picture = noise((64, 64))
    picture.paste((0, 0, 0), (0, 0, 64, 32))  # black upper half: BMP stores rows bottom-up
    picture.save(rig.inbox / "dark.bmp")
    write_sidecar(rig.inbox / "dark.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == []
    rig.tick(25)
    assert rig.queued() == ["dark"]


@pytest.mark.slow
def test_the_service_never_edits_a_half_written_jpeg(tmp_path: Path) -> None:
    """The issue's reproduction: truncate to the final size, write half, stall past settle,
    write the rest; the job must see the whole picture."""
    write_config(tmp_path, settle_seconds=0.5)
    data = encoded("JPEG", noise((256, 192), seed=3), quality=95)
    write_sidecar(tmp_path / "inbox" / "copy.yaml")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        path = tmp_path / "inbox" / "copy.jpg"
        with path.open("wb") as handle:
            handle.truncate(len(data))
            handle.write(data[: len(data) // 2])
            handle.flush()
            time.sleep(3)  # the stall: six times settle_seconds
            assert has_status(tmp_path, "copy") is None
            handle.write(data[len(data) // 2 :])
        done = wait_for(lambda: has_status(tmp_path, "copy", "completed", "failed"))
        assert service.stop() == 0
    assert done["status"] == "completed", done
    assert (tmp_path / "archive" / "copy.jpg").read_bytes() == data
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    result = np.asarray(Image.open(tmp_path / "outbox" / "copy.png").convert("RGB"), dtype=np.int16)
    # The lower half is the picture, not the grey a decoder fills a missing half with.
    assert np.abs(result[96:] - original[96:]).mean() < 8
