"""Qwen-Image-Edit-2509 at full size through QwenEditor, for each set of speed options.

    .venv/bin/python benchmarks/gpu.py                     # CUDA: full size; else tiny
    .venv/bin/python benchmarks/gpu.py --sets eager --jobs 1 --service-jobs 2   # smoke run

Nothing is downloaded: the pipeline is the published architecture with random weights,
built on the device (hotfolder.editors.tiny.make_pipeline), with a random rank-64 LoRA the
size of the Lightning LoRA; speed does not depend on the weights' values. For each option
set (in this order: eager, compile, compile+attention, compile+fp8; one pipeline, LoRA
unloaded and torch.compile reset between sets, fp8 last as it changes the weights) it times
the first 4-step one-megapixel edit (compilation included), then `--jobs` more: median
s/job, peak VRAM, and one more edit's `phases`: seconds in the text encoder, the VAE's
encoder, the transformer (its 4 calls) and the VAE's decoder. After the `--service-set` it runs `--service-jobs` drops through the real
service (a thread slot holding the same editor) for the duty cycle: time inside
`editor.edit` over the wall from the first `started_at` to the last `completed_at`.
Without CUDA it runs the same code at tiny size on the CPU and says so: those figures only
show the script works. stderr: progress; stdout: a JSON line per set as it ends, then one
with everything (also written to `--out`). benchmarks/README.md has the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from hotfolder.config import Config, EditorConfig, LoraConfig, Preset
from hotfolder.editors.base import EditRequest
from hotfolder.editors.qwen import QwenEditor
from hotfolder.editors.tiny import make_pipeline, make_random_lora

ORDER = ("eager", "compile", "compile+attention", "compile+fp8")
TARGETS = {"seconds_per_job": 2.5, "speedup": 1.8, "vram_gib": 80.0, "duty_cycle": 0.97}
IMAGE_SIZE = (1152, 864)  # 0.995 megapixels in; the pipeline generates about 1 MP
INSTRUCTION = "make the sky a deep evening blue and add warm light on the buildings"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def photo(size: tuple[int, int]) -> Image.Image:
    """Smooth gradients and noise, like a photo (the model's cost does not depend on it)."""
    base = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 40)
    return Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def option_set(name: str, attention: str) -> dict[str, Any]:
    options: dict[str, Any] = {"compile": name != "eager"}
    if name == "compile+attention":
        options["attention_backend"] = attention
    if name == "compile+fp8":
        options["quantize"] = "fp8"
    return options


def reset(torch: Any, pipe: Any) -> None:
    """Undo what the previous set's editor added, except quantization (hence fp8 last)."""
    if any(pipe.get_list_adapters().values()):
        pipe.unload_lora_weights()
    processors = pipe.transformer.attn_processors.values()
    if any(getattr(p, "_attention_backend", None) for p in processors):
        pipe.transformer.set_attention_backend("native")
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def memory(torch: Any, device: str) -> dict[str, Any]:
    if not device.startswith("cuda"):
        import resource

        return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    return {
        "peak_vram_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
    }


PARTS = {
    "text_encoder": lambda pipe: pipe.text_encoder,
    "vae_encoder": lambda pipe: pipe.vae.encoder,
    "transformer": lambda pipe: pipe.transformer,
    "vae_decoder": lambda pipe: pipe.vae.decoder,
}


def phases(torch: Any, pipe: Any, edit: Any) -> dict[str, float]:
    """Where one edit's time goes: seconds inside each part of the pipeline (summed over its
    calls; the device is synchronized around each call, so the edit runs a little slower
    than a timed one), and `rest`: the edit's wall less those (pre- and post-processing,
    the scheduler, the LoRA's and the editor's own work)."""
    spent = dict.fromkeys(PARTS, 0.0)
    calls = dict.fromkeys(PARTS, 0)
    began: dict[str, float] = {}
    handles = []

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    for name, part in PARTS.items():

        def before(_module: Any, _args: Any, name: str = name) -> None:
            sync()
            began[name] = time.perf_counter()

        def after(_module: Any, _args: Any, _out: Any, name: str = name) -> None:
            sync()
            spent[name] += time.perf_counter() - began.pop(name)
            calls[name] += 1

        module = part(pipe)
        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        sync()
        started = time.perf_counter()
        edit()
        sync()
        wall = time.perf_counter() - started
    finally:
        for handle in handles:
            handle.remove()
    found = {f"{name}_seconds": seconds for name, seconds in spent.items()}
    found.update({f"{name}_calls": count for name, count in calls.items()})
    return {"wall_seconds": wall, **found, "rest_seconds": wall - sum(spent.values())}


def time_set(
    editor: QwenEditor, preset: Preset, jobs: int, torch: Any, pipe: Any
) -> dict[str, Any]:
    image = photo(IMAGE_SIZE)

    def one(seed: int) -> float:
        request = EditRequest(
            image=image,
            instruction=INSTRUCTION,
            seed=seed,
            preset_name="bench",
            preset=preset,
            steps=preset.steps,
            true_cfg_scale=preset.true_cfg_scale,
            negative_prompt=None,
        )
        started = time.perf_counter()
        editor.edit(request, lambda _step, _steps: None)
        return time.perf_counter() - started

    started = time.perf_counter()
    editor.load()
    editor.prepare(preset)
    found: dict[str, Any] = {"load_seconds": time.perf_counter() - started}
    found["first_edit_seconds"] = one(0)  # compilation, autotuning, allocator growth
    if editor.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(editor.device)
    times = [one(seed) for seed in range(1, jobs + 1)]
    if times:
        found.update(median_seconds=statistics.median(times), seconds=times)
        found.update(memory(torch, editor.device))
        found["phases"] = phases(torch, pipe, lambda: one(jobs + 1))
    return found


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def duty_cycle(editor: QwenEditor, preset: Preset, jobs: int, base: Path) -> dict[str, Any]:
    """`jobs` drops through the service (burst mode) with this editor in a thread slot."""
    from hotfolder.service import Service

    root = base / "service"
    (root / "inbox").mkdir(parents=True)
    for index in range(jobs):
        photo(IMAGE_SIZE).save(root / "inbox" / f"job{index:02d}.jpg", quality=90)
        (root / "inbox" / f"job{index:02d}.yaml").write_text(f"instruction: {INSTRUCTION}\n")
    config = Config(
        root=root,
        settle_seconds=0,
        max_pending=jobs,
        editor=editor.config,
        default_preset="bench",
        presets={"bench": preset},
    )
    edits: list[float] = []
    edit = editor.edit

    def timed(request: EditRequest, progress: Any) -> Any:
        started = time.perf_counter()
        try:
            return edit(request, progress)
        finally:
            edits.append(time.perf_counter() - started)

    editor.edit = timed  # type: ignore[method-assign]
    try:
        Service(config, editor=editor).run(once=True)
    finally:
        editor.edit = edit  # type: ignore[method-assign]
    statuses = [json.loads(p.read_text()) for p in (root / "outbox").glob("job*.status.json")]
    done = [s for s in statuses if s["status"] == "completed"]
    if len(done) != jobs:
        raise RuntimeError(f"{len(done)} of {jobs} jobs completed")
    wall = max(stamp(s["completed_at"]) for s in done) - min(stamp(s["started_at"]) for s in done)
    return {
        "jobs": jobs,
        "wall_seconds": wall,
        "edit_seconds": sum(edits),
        "ratio": sum(edits) / wall,
    }


def editor_on(pipe: Any, size: dict[str, Any], **options: Any) -> QwenEditor:
    """A QwenEditor around the built pipeline, with these speed options."""
    editor_config = EditorConfig(
        name="qwen",
        model=f"random {size['size']}-size Qwen-Image-Edit-2509 (benchmark)",
        device=size["device"],
        dtype=size["dtype"],
        max_pixels=size["max_pixels"],
        # The first timed edit is this script's warm-up: its jobs all have one shape.
        warmup=False,
        **options,
    )
    return QwenEditor(editor_config, build=lambda: pipe)


def run_set(
    name: str,
    pipe: Any,
    args: argparse.Namespace,
    size: dict[str, Any],
    *,
    jobs: int,
    service: bool,
) -> dict[str, Any]:
    import torch

    reset(torch, pipe)
    editor = editor_on(pipe, size, **option_set(name, args.attention))
    preset = Preset(
        steps=4, true_cfg_scale=1.0, scheduler="lightning", lora=LoraConfig(source=args.lora)
    )
    found = time_set(editor, preset, jobs, torch, pipe)
    if service:
        found["duty_cycle"] = duty_cycle(editor, preset, args.service_jobs, args.dir)
    return found


def load_peak(pipe: Any, args: argparse.Namespace, size: dict[str, Any]) -> dict[str, Any]:
    """`QwenEditor.load` of a pipeline that starts on the CPU (as `from_pretrained` leaves
    it) with `--load-peak`'s quantization: the device's peak memory while it loads, then one
    eager edit. It quantizes the pipeline in place, so nothing else runs after it."""
    import torch

    pipe.to("cpu")
    gc.collect()
    device = size["device"]
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    editor = editor_on(pipe, size, quantize=args.load_peak)
    started = time.perf_counter()
    editor.load()
    loaded = {"seconds": time.perf_counter() - started, **memory(torch, device)}
    preset = Preset(steps=4, true_cfg_scale=1.0, scheduler="lightning")
    edits = time_set(editor, preset, 1, torch, pipe)  # its load_seconds: the no-op reload
    return {"quantize": args.load_peak, "load": loaded, "edits": edits}


def run_sets(
    pipe: Any, args: argparse.Namespace, size: dict[str, Any], report: dict[str, Any]
) -> None:
    """Each set in turn; the duty cycle with the service set, or else the last that ran."""
    service_set = args.service_set or args.sets[-1]
    for name in args.sets:
        say(f"{name}: {option_set(name, args.attention)}")
        service = name == service_set and args.service_jobs > 0
        try:
            found = run_set(name, pipe, args, size, jobs=args.jobs, service=service)
        except Exception as e:  # one set that cannot run must not hide the others' figures
            found = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        record(report, name, found, args.out)
    ran = [name for name in args.sets if "error" not in report["sets"][name]]
    if args.service_jobs and ran and not any("duty_cycle" in report["sets"][n] for n in ran):
        say(f"duty cycle with {ran[-1]} ({service_set} did not run)")
        # A failed fp8 set may have quantized the weights already: say so with the figure.
        weight = pipe.transformer.transformer_blocks[0].attn.to_q.weight
        try:
            duty = run_set(ran[-1], pipe, args, size, jobs=0, service=True)["duty_cycle"]
            duty["quantized_weights"] = type(weight.data).__name__ != "Tensor"
        except Exception as e:
            duty = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        report["sets"][ran[-1]]["duty_cycle"] = duty
        record(report, ran[-1], report["sets"][ran[-1]], args.out)


def record(report: dict[str, Any], name: str, found: dict[str, Any], out: Path | None) -> None:
    say(f"  {json.dumps(found, default=str)}")
    print(json.dumps({"set": name, **found}), flush=True)
    report["sets"][name] = found
    report["verdict"] = verdict(report["sets"])
    if out is not None:
        out.write_text(json.dumps(report, indent=1))


def machine(torch: Any, device: str) -> dict[str, Any]:
    import diffusers

    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return info


def verdict(sets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    timed = {name: found for name, found in sets.items() if "median_seconds" in found}
    if not timed:
        return {}
    best = min(timed, key=lambda name: timed[name]["median_seconds"])
    result: dict[str, Any] = {"best_set": best, "best_seconds": timed[best]["median_seconds"]}
    if "eager" in timed:
        result["speedup_over_eager"] = timed["eager"]["median_seconds"] / result["best_seconds"]
    result["best_peak_vram_gib"] = timed[best].get("peak_vram_gib")
    duty = [
        found["duty_cycle"]["ratio"]
        for found in sets.values()
        if "ratio" in found.get("duty_cycle", {})
    ]
    result["duty_cycle"] = duty[0] if duty else None
    return result


def judged(verdict: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's targets for an H200, met or not (None: not measured)."""

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    speedup = verdict.get("speedup_over_eager")
    duty = verdict.get("duty_cycle")
    return {
        "seconds_per_job": at_most(verdict.get("best_seconds"), TARGETS["seconds_per_job"]),
        "speedup": None if speedup is None else speedup >= TARGETS["speedup"],
        "vram_gib": at_most(verdict.get("best_peak_vram_gib"), TARGETS["vram_gib"]),
        "duty_cycle": None if duty is None else duty >= TARGETS["duty_cycle"],
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("auto", "full", "tiny"), default="auto")
    parser.add_argument(
        "--sets", default=",".join(ORDER), help="comma-separated: " + ", ".join(ORDER)
    )
    parser.add_argument("--jobs", type=int, default=5, help="timed edits per set, after the first")
    parser.add_argument("--service-jobs", type=int, default=20)
    parser.add_argument("--service-set", default=None, help="default: the last set run")
    parser.add_argument(
        "--attention", default=None, help="default: _native_cudnn (CUDA), _native_math"
    )
    parser.add_argument(
        "--load-peak",
        choices=("none", "fp8", "int8"),
        default=None,
        help="instead of the sets: the peak device memory of loading from the CPU so quantized",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here (JSON)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="scratch folder (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    given = args.sets.split(",")
    if not set(given) <= set(ORDER) or args.service_set not in (None, *given):
        parser.error(f"--sets and --service-set take names from: {', '.join(ORDER)}")
    args.sets = [name for name in ORDER if name in given]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    cuda = torch.cuda.is_available()
    full = args.size == "full" or (args.size == "auto" and cuda)
    size = {
        "size": "full" if full else "tiny",
        "device": "cuda" if cuda else "cpu",
        "dtype": "bfloat16" if cuda else "float32",
        "max_pixels": None if full else 64 * 64,  # tiny: a small output, as the tests use
    }
    args.attention = args.attention or ("_native_cudnn" if cuda else "_native_math")
    if not full:
        say("no CUDA device: tiny size on the CPU; these figures only show that the script works")
    with tempfile.TemporaryDirectory(prefix="hotfolder-gpu-") as scratch:
        args.dir = args.dir or Path(scratch)
        started = time.perf_counter()
        pipe = make_pipeline(size["size"], device=size["device"], dtype=size["dtype"])
        say(
            f"built the {size['size']}-size pipeline on {size['device']} in {time.perf_counter() - started:.0f} s"
        )
        lora = make_random_lora(
            pipe.transformer, args.dir / "lora" / "lora.safetensors", rank=64 if full else 4
        )
        args.lora = str(lora)
        report: dict[str, Any] = {**size, "machine": machine(torch, size["device"]), "sets": {}}
        if args.load_peak:
            report["load_peak"] = load_peak(pipe, args, size)
            print(json.dumps(report), flush=True)
            return 0
        run_sets(pipe, args, size, report)
        report["targets"] = TARGETS
        report["met"] = judged(report["verdict"]) if full else "not judged at tiny size"
        report["wall_seconds"] = time.perf_counter() - started
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
