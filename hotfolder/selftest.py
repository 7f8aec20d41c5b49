"""`hotfolder selftest`: build a tiny random Qwen-Image-Edit pipeline, load it with the
production loader, and run real drops through the service in burst mode.

It proves the install (torch, diffusers, transformers, peft, the device) without
downloading weights; an operator runs it on a new GPU box before the real model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TextIO

import yaml
from PIL import Image

from hotfolder.config import Config, EditorConfig, LoraConfig, Preset
from hotfolder.editors import make_editor
from hotfolder.images import read_metadata
from hotfolder.service import Service
from hotfolder.status import read_status


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

        root = base / "root"
        inbox = root / "inbox"
        inbox.mkdir(parents=True)
        config = Config(
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
        jobs = {"a": ("tiny-2step", 11), "b": ("tiny-lora", 11), "c": ("tiny-2step", 11)}
        for index, (name, (preset, seed)) in enumerate(jobs.items()):
            Image.new("RGB", (80, 60), (40 * index, 120, 200)).save(inbox / f"{name}.png")
            sidecar = {"instruction": "make the sky blue", "preset": preset, "seed": seed}
            (inbox / f"{name}.yaml").write_text(yaml.safe_dump(sidecar))
        # a and c have different inputs; a second a-like drop checks reproducibility.
        Image.open(inbox / "a.png").save(inbox / "a2.png")
        (inbox / "a2.yaml").write_text((inbox / "a.yaml").read_text())

        started = time.perf_counter()
        # The editor object is kept here (in a thread slot) so its load count can be read.
        editor = make_editor(config)
        service = Service(config, editor=editor)
        service.run(once=True)
        ran = time.perf_counter() - started
        print(f"loaded it with the production loader and ran 4 jobs in {ran:.1f} s", file=out)

        statuses = {n: read_status(root / "outbox" / f"{n}.status.json") for n in (*jobs, "a2")}
        check(
            "every job completed",
            all(s is not None and s.status == "completed" for s in statuses.values()),
        )
        results_exist = all((root / "outbox" / f"{n}.png").exists() for n in statuses)
        check("every result is in outbox/", results_exist)
        if results_exist:
            with Image.open(root / "outbox" / "a.png") as im:
                check("results are resized back to the input's size", im.size == (80, 60))
            meta = read_metadata((root / "outbox" / "a.png").read_bytes())
            check("the seed and instruction are in the result's metadata", meta.get("seed") == "11")
            pixels = {n: _pixels(root / "outbox" / f"{n}.png") for n in ("a", "a2", "b")}
            check("the same input and seed give the same pixels", pixels["a"] == pixels["a2"])
            check("a LoRA preset changes the output", pixels["b"] != pixels["a"])
        check(
            "switching presets never reloaded the base weights",
            getattr(editor, "base_loads", None) == 1,
        )
        check("inputs went to archive/", len(list((root / "archive").glob("*.png"))) == 4)
    passed = all(ok for _what, ok in results)
    print("selftest passed" if passed else "selftest FAILED", file=out)
    return passed


def _pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()
