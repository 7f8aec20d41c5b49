"""Decode time of 24-megapixel camera files with `limits.oversize: fit`, against the libraries alone.

The service's decode (`images.load_for_edit`: read, header checks, full decode, fit to
max_dimension, upright, EXIF kept) next to the plain library doing the same pixels' work
(decode, then a Lanczos fit to the same size). Best of `repeats` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pillow_heif
import rawpy
from PIL import Image

from hotfolder import images, rawfiles
from hotfolder.config import Limits
from tests import samples

SIZE = (6000, 4000)  # 24 MP, a common camera sensor
QUICK_SIZE = (3000, 2000)
LIMITS = Limits(oversize="fit", max_file_bytes=200_000_000)


def _best(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _fit(image: Image.Image) -> Image.Image:
    return image.resize(
        rawfiles.fit_size(image.size, LIMITS.max_dimension), Image.Resampling.LANCZOS
    )


def _pillow(path: Path) -> object:
    with Image.open(path) as image:
        return _fit(image.convert("RGB"))


def _pillow_draft(path: Path) -> object:
    with Image.open(path) as image:
        image.draft("RGB", rawfiles.fit_size(image.size, LIMITS.max_dimension))
        return _fit(image.convert("RGB"))


def _heif(path: Path) -> object:
    return _fit(pillow_heif.open_heif(path, convert_hdr_to_8bit=True).to_pillow())


def _raw(path: Path) -> object:
    with rawpy.imread(str(path)) as raw:
        # Half size where that still covers max_dimension, as the service does (at the quick
        # size, 3000x2000, it does not: both demosaic in full).
        half = max(raw.sizes.width, raw.sizes.height) // 2 >= LIMITS.max_dimension
        rgb = raw.postprocess(use_camera_wb=True, output_bps=8, half_size=half)
    return _fit(Image.fromarray(rgb))


def _files(base: Path, size: tuple[int, int]) -> dict[str, tuple[Path, Callable[[Path], object]]]:
    picture = samples.photo(size)
    # Written in 512 px tiles as phones do: libde265 cannot decode a 24 MP HEVC frame in one
    # piece ("did not give a decompressed image"), with or without hotfolder.
    pillow_heif.options.GRID_TILE_SIZE = 512
    made = {
        "jpeg": ("cam.jpg", samples.encoded(picture, "JPEG", quality=90), _pillow),
        "heic": ("cam.heic", samples.heic(size), _heif),
        "raw": ("cam.dng", samples.dng(size), _raw),
    }
    files = {}
    for kind, (name, data, plain) in made.items():
        path = base / name
        path.write_bytes(data)
        files[kind] = (path, plain)
    return files


def decode_figures(base: Path, *, quick: bool, repeats: int = 3) -> dict[str, Any]:
    """Per kind: the service's seconds, the library's, their ratio; for JPEG also the library
    with libjpeg's draft scaling (which the service itself uses)."""
    base.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    for kind, (path, plain) in _files(base, QUICK_SIZE if quick else SIZE).items():
        service = _best(lambda p=path: images.load_for_edit(p, limits=LIMITS), repeats)
        library = _best(lambda p=path, f=plain: f(p), repeats)
        found[kind] = {"service_s": service, "library_s": library, "ratio": service / library}
        if kind == "jpeg":
            found[kind]["library_draft_s"] = _best(lambda p=path: _pillow_draft(p), repeats)
    return found
