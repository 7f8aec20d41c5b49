"""`hotfolder selftest`: build a tiny random Qwen-Image-Edit pipeline, load it with the
production loader, and run real drops through the service in burst mode.

It proves the install (torch, diffusers, transformers, peft, the device) without
downloading weights; an operator runs it on a new GPU box before the real model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import yaml
from PIL import Image

from hotfolder.config import Config, EditorConfig, LoraConfig, Preset
from hotfolder.editors import make_editor
from hotfolder.images import read_metadata
from hotfolder.service import Service
from hotfolder.status import read_status

JOBS = {"a": ("tiny-2step", 11), "b": ("tiny-lora", 11), "c": ("tiny-2step", 11)}


def run_selftest(device: str, out: TextIO) -> bool:
    """Run the self-test; print each check and the timings to `out`; True if all passed."""
    from hotfolder.editors.tiny import build_tiny_pipeline, make_tiny_lora

    logging.getLogger("hotfolder").setLevel(logging.WARNING)
    results: list[tuple[str, bool]] = []

    def check(what: str, ok: bool) -> None:
        results.append((what, ok))
        print(f"{'ok  ' if ok else 'FAIL'}  {what}", file=out)

    with tempfile.TemporaryDirectory(prefix="hotfolder-selftest-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        model = build_tiny_pipeline(base / "model")
        lora = make_tiny_lora(model, base / "lora" / "tiny-lora.safetensors")
        built = time.perf_counter() - started
        print(f"built a tiny random pipeline and LoRA in {built:.1f} s", file=out)

        config = _config(base / "root", device, model, lora)
        _drop(config.root_path / "inbox")
        started = time.perf_counter()
        # The editor object is kept here (in a thread slot) so its load count can be read.
        editor = make_editor(config)
        Service(config, editor=editor).run(once=True)
        ran = time.perf_counter() - started
        print(f"loaded it with the production loader and ran 4 jobs in {ran:.1f} s", file=out)
        _check_results(config.root_path, check)
        check(
            "switching presets never reloaded the base weights",
            getattr(editor, "base_loads", None) == 1,
        )
    passed = all(ok for _what, ok in results)
    print("selftest passed" if passed else "selftest FAILED", file=out)
    return passed


def _config(root: Path, device: str, model: Path, lora: Path) -> Config:
    """Burst mode on a polling observer, the tiny model on `device`, a plain and a LoRA preset."""
    return Config(
        root=root,
        settle_seconds=0,
        sidecar_wait_seconds=5,
        observer="polling",
        editor=EditorConfig(
            name="qwen",
            model=str(model),
            device=device,
            dtype="float32",
            max_pixels=64 * 64,
        ),
        presets={
            "tiny-2step": Preset(steps=2, true_cfg_scale=1.0, nominal_seconds=1),
            "tiny-lora": Preset(
                steps=2,
                true_cfg_scale=1.0,
                nominal_seconds=1,
                scheduler="lightning",
                lora=LoraConfig(source=str(lora)),
            ),
        },
        default_preset="tiny-2step",
    )


def _drop(inbox: Path) -> None:
    """Three drops, plus a2: a copy of a, to check that the same input and seed repeat."""
    inbox.mkdir(parents=True)
    for index, (name, (preset, seed)) in enumerate(JOBS.items()):
        Image.new("RGB", (80, 60), (40 * index, 120, 200)).save(inbox / f"{name}.png")
        sidecar = {"instruction": "make the sky blue", "preset": preset, "seed": seed}
        (inbox / f"{name}.yaml").write_text(yaml.safe_dump(sidecar))
    Image.open(inbox / "a.png").save(inbox / "a2.png")
    (inbox / "a2.yaml").write_text((inbox / "a.yaml").read_text())


def _check_results(root: Path, check: Callable[[str, bool], None]) -> None:
    outbox = root / "outbox"
    statuses = {n: read_status(outbox / f"{n}.status.json") for n in (*JOBS, "a2")}
    check(
        "every job completed",
        all(s is not None and s.status == "completed" for s in statuses.values()),
    )
    results_exist = all((outbox / f"{n}.png").exists() for n in statuses)
    check("every result is in outbox/", results_exist)
    if results_exist:
        with Image.open(outbox / "a.png") as im:
            check("results are resized back to the input's size", im.size == (80, 60))
        meta = read_metadata((outbox / "a.png").read_bytes())
        check("the seed and instruction are in the result's metadata", meta.get("seed") == "11")
        pixels = {n: _pixels(outbox / f"{n}.png") for n in ("a", "a2", "b")}
        check("the same input and seed give the same pixels", pixels["a"] == pixels["a2"])
        check("a LoRA preset changes the output", pixels["b"] != pixels["a"])
    check("inputs went to archive/", len(list((root / "archive").glob("*.png"))) == 4)


def _pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()
