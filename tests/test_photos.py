"""Photographers' files (SPEC "Photographers' files", `limits.oversize`): HEIC, AVIF, RAW,
camera-sized JPEGs, EXIF kept in results, `output.format: same`. Samples made by tests/samples."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from hotfolder import exifdata, images, rawfiles
from hotfolder.config import Limits
from hotfolder.errors import IncompleteImage, Reason, Rejected
from tests import samples

LIMITS = Limits()
FIT = Limits(oversize="fit", max_dimension=64)

KINDS = {
    "a.heic": (samples.heic, "HEIF"),
    "a.avif": (samples.avif, "AVIF"),
    "a.dng": (samples.dng, "RAW"),
}


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(KINDS))
def test_new_formats_probe_and_load(tmp_path: Path, name: str) -> None:
    make, fmt = KINDS[name]
    path = write(tmp_path, name, make())
    assert images.probe(path, limits=LIMITS) == images.ProbedImage(fmt, 96, 64)
    source = images.load_for_edit(path, limits=LIMITS)
    assert (source.size, source.image.mode, source.format) == ((96, 64), "RGB", fmt)


def test_raw_is_developed_in_colour_with_its_exif(tmp_path: Path) -> None:
    source = images.load_for_edit(write(tmp_path, "a.DNG", samples.dng()), limits=LIMITS)
    red, green, blue = source.image.resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert max(red, green, blue) - min(red, green, blue) > 20
    exif = exifdata.for_result(source.exif)
    assert exif[samples.MODEL] == "Test Body 1"
    assert exif.get_ifd(exifdata.EXIF_IFD)[samples.LENS_MODEL] == "Test Lens 50mm"


def test_raw_is_scaled_to_fit_even_without_oversize_fit(tmp_path: Path) -> None:
    path = write(tmp_path, "a.dng", samples.dng((200, 150)))
    source = images.load_for_edit(path, limits=Limits(max_dimension=64))
    assert source.size == (64, 48)
    assert source.original_size is None  # a RAW's developed size is its input size


@pytest.mark.parametrize("name", sorted(KINDS))
def test_truncated_new_formats_wait(tmp_path: Path, name: str) -> None:
    data = KINDS[name][0]()
    path = write(tmp_path, name, data[: len(data) * 2 // 3])
    with pytest.raises(IncompleteImage):
        images.probe(path, limits=LIMITS)


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("a.jpg", samples.heic(), "contains HEIF data but is named .jpg; rename it to .heic"),
        ("a.heic", samples.camera_jpeg(), "contains JPEG data but is named .heic"),
        ("a.heic", samples.avif(), "contains AVIF data but is named .heic"),
        ("a.nef", samples.camera_jpeg(), "contains JPEG data but is named .nef; rename it to .jpg"),
        ("a.cr3", samples.heic(), "contains HEIF/AVIF data but is named .cr3"),
        ("a.dng", b"not a raw file at all" * 20, "is not a camera RAW file"),
    ],
)
def test_content_lying_about_its_extension(
    tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    with pytest.raises(Rejected) as info:
        images.probe(write(tmp_path, name, data), limits=LIMITS)
    assert info.value.code is Reason.invalid_image
    assert says in info.value.message


def test_raw_bomb_by_header_is_not_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rawfiles, "RAW_MAX_PIXELS", 96 * 64 - 1)
    with pytest.raises(Rejected) as info:
        images.probe(write(tmp_path, "a.dng", samples.dng()), limits=LIMITS)
    assert "decompression bomb" in info.value.message


def test_heic_bomb_by_header(tmp_path: Path) -> None:
    with pytest.raises(Rejected) as info:
        images.probe(
            write(tmp_path, "a.heic", samples.heic((96, 64))), limits=Limits(max_dimension=16)
        )
    assert info.value.code is Reason.invalid_image
    assert "decompression bomb" in info.value.message


def test_raw_over_max_raw_bytes_is_too_large(tmp_path: Path) -> None:
    path = write(tmp_path, "a.dng", samples.dng())
    with pytest.raises(Rejected) as info:
        images.probe(path, limits=Limits(max_raw_bytes=1000, max_file_bytes=10**9))
    assert info.value.code is Reason.too_large
    assert "max_raw_bytes" in info.value.message


def test_raw_may_exceed_max_file_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "a.dng", samples.dng())
    assert images.probe(path, limits=Limits(max_file_bytes=100)).format == "RAW"


# --- limits.oversize ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.jpg", "a.heic", "a.png"])
def test_oversize_reject_is_the_default(tmp_path: Path, name: str) -> None:
    data = {"a.jpg": samples.camera_jpeg((200, 100)), "a.heic": samples.heic((200, 100))}.get(
        name, samples.encoded(samples.photo((200, 100)), "PNG")
    )
    with pytest.raises(Rejected) as info:
        images.probe(write(tmp_path, name, data), limits=Limits(max_dimension=64))
    assert info.value.code is Reason.too_large


@pytest.mark.parametrize("name", ["a.jpg", "a.heic", "a.png"])
def test_oversize_fit_scales_down_and_remembers_the_size(tmp_path: Path, name: str) -> None:
    data = {"a.jpg": samples.camera_jpeg((200, 100)), "a.heic": samples.heic((200, 100))}.get(
        name, samples.encoded(samples.photo((200, 100)), "PNG")
    )
    path = write(tmp_path, name, data)
    assert images.probe(path, limits=FIT).width == 200
    source = images.load_for_edit(path, limits=FIT)
    assert (source.size, source.original_size) == ((64, 32), (200, 100))


def test_oversize_fit_with_rotation_keeps_the_upright_original(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jpg", samples.camera_jpeg((200, 100), orientation=6))
    source = images.load_for_edit(path, limits=FIT)
    assert (source.size, source.original_size) == ((32, 64), (100, 200))


def test_oversize_fit_still_refuses_bombs(tmp_path: Path) -> None:
    image = Image.new("1", (20000, 5000))
    path = write(tmp_path, "a.png", samples.encoded(image, "PNG"))
    with pytest.raises(Rejected) as info:
        images.probe(path, limits=Limits(oversize="fit", max_file_bytes=10**8))
    assert info.value.code is Reason.invalid_image


# --- EXIF in results, output.format: same --------------------------------------------------------


def result_exif(data: bytes) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as image:
        return image.getexif()


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_camera_exif_is_kept_orientation_reset_gps_dropped(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, "a.jpg", samples.camera_jpeg(orientation=6, gps=True))
    source = images.load_for_edit(path, limits=LIMITS)
    data = images.encode_result(
        source.image,
        fmt=fmt,
        quality=90,
        icc_profile=None,
        metadata={"instruction": "sky", "seed": "1"},
        camera_exif=exifdata.without_gps(source.exif),
    )
    exif = result_exif(data)
    for tag, value in samples.CAMERA.items():
        assert exif[tag] == value
    assert exif[exifdata.ORIENTATION] == 1
    sub = exif.get_ifd(exifdata.EXIF_IFD)
    assert sub[samples.DATETIME_ORIGINAL] == "2026:11:29 04:15:00"
    assert sub[samples.LENS_MODEL] == "Test Lens 50mm"
    assert float(sub[samples.EXPOSURE_TIME]) == pytest.approx(1 / 250)
    assert not exif.get_ifd(exifdata.GPS_IFD)
    assert images.read_metadata(data)["instruction"] == "sky"


def test_gps_is_kept_when_asked(tmp_path: Path) -> None:
    source = images.load_for_edit(
        write(tmp_path, "a.jpg", samples.camera_jpeg(gps=True)), limits=LIMITS
    )
    data = images.encode_result(
        source.image, fmt="jpeg", quality=90, icc_profile=None, metadata={}, camera_exif=source.exif
    )
    assert result_exif(data).get_ifd(exifdata.GPS_IFD)[samples.GPS_LATITUDE_REF] == "N"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        *(("JPEG", "jpeg"), ("MPO", "jpeg"), ("PNG", "png"), ("WEBP", "webp")),
        *(("HEIF", "png"), ("AVIF", "png"), ("RAW", "png"), ("TIFF", "png")),
    ],
)
def test_output_format_same(source: str, expected: str) -> None:
    assert images.result_format("same", source) == expected
    assert images.result_format("webp", source) == "webp"


# --- end to end through the edit path (hotfolder edit, identity editor) -------------------------


@pytest.mark.parametrize("name", ["a.heic", "a.avif", "a.dng", "a.jpg"])
def test_photographers_file_is_edited_with_its_exif(tmp_path: Path, name: str) -> None:
    from hotfolder.config import Config, EditorConfig
    from hotfolder.oneshot import edit_one

    make = {"a.jpg": lambda: samples.camera_jpeg((200, 100), gps=True)}.get(
        name, KINDS.get(name, (None,))[0]
    )
    assert make is not None
    image = write(tmp_path, name, make())
    config = Config(editor=EditorConfig(name="identity"), limits=FIT)
    out = edit_one(
        config, image, "x", seed=1, preset=None, out=tmp_path / "out.jpg", stream=io.StringIO()
    )
    with Image.open(out) as result:
        # Fitted images come back at their original size; a RAW at its developed, fitted size.
        expected = {"a.jpg": (200, 100), "a.dng": (64, 43)}.get(name, (96, 64))
        assert result.size == expected
        exif = result.getexif()
    if name in ("a.jpg", "a.dng"):
        assert exif[samples.MODEL] == "Test Body 1"
        assert not exif.get_ifd(exifdata.GPS_IFD)


def test_photographers_profile_is_a_valid_configuration() -> None:
    import yaml

    from hotfolder.config import Config

    text = (Path(__file__).parents[1] / "config" / "photographers.yaml").read_text()
    config = Config.model_validate(yaml.safe_load(text))
    assert (config.limits.oversize, config.keep_inputs) == ("fit", True)


# --- end to end through the real service (`hotfolder run`, identity editor) ----------------------


def test_a_photographers_folder_comes_back_edited_named_as_dropped_with_its_exif(
    tmp_path: Path,
) -> None:
    """Pass: a card's folder (RAW+JPEG, RAW alone, HEIC, HEIF, AVIF, a JPEG bigger than
    max_dimension), dropped into a service run with config/photographers.yaml's settings and a
    folder `_defaults.yaml` with `output.format: same`, comes back as one result per picture,
    named as dropped, JPEG in JPEG out at its full size, the camera's EXIF kept and GPS
    dropped; every dropped file (the RAW beside its JPEG too) is in archive/."""
    import yaml
    from support import ServiceProcess, files_under, has_status, wait_for, write_config

    profile = yaml.safe_load(
        (Path(__file__).parents[1] / "config" / "photographers.yaml").read_text()
    )
    write_config(tmp_path, **profile)
    card = tmp_path / "inbox" / "card"
    card.mkdir(parents=True)
    (card / "_defaults.yaml").write_text(
        'instruction: "warmer light"\nseed: 3\noutput:\n  format: same\n  quality: 92\n'
    )
    with_gps = samples.camera_exif(gps=True).tobytes()
    big = (3000, 2000)  # over max_dimension 2048: fitted for the edit, scaled back after
    drops = {
        "IMG_7001.CR3": samples.dng(),
        "IMG_7001.JPG": samples.camera_jpeg(gps=True),
        "IMG_7002.DNG": samples.dng(),
        "IMG_7003.HEIC": samples.heic(exif=with_gps),
        "IMG_7004.heif": samples.heic(exif=with_gps),
        "IMG_7005.avif": samples.avif(exif=with_gps),
        "IMG_7006.JPG": samples.camera_jpeg(big, gps=True),
    }
    results = {
        "IMG_7001": ("IMG_7001.jpeg", (96, 64)),
        "IMG_7002": ("IMG_7002.png", (96, 64)),
        "IMG_7003": ("IMG_7003.png", (96, 64)),
        "IMG_7004": ("IMG_7004.png", (96, 64)),
        "IMG_7005": ("IMG_7005.png", (96, 64)),
        "IMG_7006": ("IMG_7006.jpeg", big),
    }
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        for name, data in drops.items():
            (card / name).write_bytes(data)
        for stem in results:
            done = wait_for(
                lambda stem=stem: has_status(tmp_path, f"card/{stem}", "completed", "failed"),
                timeout=180,
                what=f"card/{stem}",
            )
            assert done["status"] == "completed", (done, service.log())
        assert service.stop() == 0, service.log()
    outbox = tmp_path / "outbox" / "card"
    assert sorted(p.name for p in outbox.iterdir() if not p.name.endswith(".json")) == sorted(
        name for name, _ in results.values()
    )
    for stem, (name, size) in results.items():
        with Image.open(outbox / name) as result:
            assert (result.format, result.size) == (
                "JPEG" if name.endswith(".jpeg") else "PNG",
                size,
            ), stem
            exif = result.getexif()
        assert (exif[samples.MAKE], exif[samples.MODEL]) == ("Hotfolder", "Test Body 1"), stem
        assert not exif.get_ifd(exifdata.GPS_IFD), stem
        if stem != "IMG_7002":  # the sample DNG keeps its date in IFD0 only
            sub = exif.get_ifd(exifdata.EXIF_IFD)
            assert sub[samples.DATETIME_ORIGINAL] == "2026:11:29 04:15:00", stem
    assert files_under(tmp_path / "archive") == sorted(f"card/{name}" for name in drops)
    assert files_under(tmp_path / "failed") == []
    assert files_under(tmp_path / "inbox") == ["card/_defaults.yaml"]
    assert not (tmp_path / "outbox" / "card" / "IMG_7001~2.status.json").exists()
