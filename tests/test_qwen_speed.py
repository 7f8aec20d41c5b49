"""The speed options on the tiny random pipeline, on the CPU: warm-up, VAE tiling, attention
backend, torchao quantization, and torch.compile with preset switches that do not recompile."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hotfolder.config import EditorConfig, LoraConfig, Preset
from hotfolder.editors import speed
from hotfolder.editors.base import EditRequest
from hotfolder.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from hotfolder.editors.qwen import EditorUnavailable, QwenEditor  # noqa: E402
from hotfolder.editors.tiny import make_pipeline, make_tiny_lora  # noqa: E402

MAX_PIXELS = 64 * 64
BASE = Preset(steps=2, true_cfg_scale=1.0)


@pytest.fixture(scope="module")
def tiny_lora(tiny_qwen_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_lora(
        tiny_qwen_model, tmp_path_factory.mktemp("lora") / "tiny-lora.safetensors"
    )


@pytest.fixture
def make_editor(tiny_qwen_model: Path) -> Callable[..., QwenEditor]:
    def make(**overrides: object) -> QwenEditor:
        settings: dict[str, object] = {
            "model": str(tiny_qwen_model),
            "device": "cpu",
            "dtype": "float32",
            "max_pixels": MAX_PIXELS,
            **overrides,
        }
        return QwenEditor(EditorConfig.model_validate(settings))

    return make


def request(preset: Preset = BASE, size: tuple[int, int] = (64, 48)) -> EditRequest:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return EditRequest(
        image=Image.fromarray(pixels, "RGB"),
        instruction="make the sky blue",
        seed=1,
        preset_name="test",
        preset=preset,
        steps=preset.steps,
        true_cfg_scale=preset.true_cfg_scale,
        negative_prompt=preset.negative_prompt,
    )


def pixels(editor: QwenEditor, req: EditRequest | None = None) -> np.ndarray[Any, Any]:
    return np.asarray(editor.edit(req or request(), lambda step, steps: None).image, dtype=float)


def count_pipeline_calls(editor: QwenEditor, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    pipe_class = type(editor.pipeline)
    real = pipe_class.__call__

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["width"] * kwargs["height"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pipe_class, "__call__", counted)
    return calls


def test_warm_up_edits_once_with_the_preset_and_only_once(
    make_editor: Callable[..., QwenEditor], monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = make_editor(warmup=True)
    editor.load()
    calls = count_pipeline_calls(editor, monkeypatch)
    editor.warm_up(BASE)
    editor.warm_up(BASE)
    assert len(calls) == 1
    assert editor.warmups == 1
    assert editor.warmup_seconds is not None


def test_a_warm_up_that_fails_names_the_options_to_drop(
    make_editor: Callable[..., QwenEditor], monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = make_editor(warmup=True)
    editor.load()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("backend compiler failed")

    monkeypatch.setattr(editor.pipeline.transformer, "forward", broken)
    with pytest.raises(EditorUnavailable, match=r"warm-up edit failed.*editor\.compile"):
        editor.warm_up(BASE)
    assert editor.warmups == 0


def test_no_warm_up_unless_asked(
    make_editor: Callable[..., QwenEditor], monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = make_editor()
    editor.load()
    calls = count_pipeline_calls(editor, monkeypatch)
    editor.warm_up(BASE)
    assert (calls, editor.warmups) == ([], 0)


@pytest.mark.parametrize(("mode", "tiled"), [("on", True), ("auto", False)])
def test_vae_tiling_follows_the_option(
    make_editor: Callable[..., QwenEditor], mode: str, tiled: bool
) -> None:
    editor = make_editor(vae_tiling=mode)
    assert pixels(editor).shape == (48, 64, 3)
    assert editor.pipeline.vae.use_tiling is tiled


@pytest.fixture
def native_attention_after() -> Iterator[None]:
    """set_attention_backend also sets diffusers' process-wide default: put it back."""
    yield
    from diffusers.models.attention_dispatch import (
        AttentionBackendName,
        _AttentionBackendRegistry,
    )

    _AttentionBackendRegistry.set_active_backend(AttentionBackendName.NATIVE)


@pytest.mark.usefixtures("native_attention_after")
def test_an_attention_backend_is_set_and_edits_alike(
    make_editor: Callable[..., QwenEditor],
) -> None:
    plain = pixels(make_editor())
    editor = make_editor(attention_backend="_native_math")
    result = pixels(editor)
    backends = {
        str(getattr(p, "_attention_backend", None))
        for p in editor.pipeline.transformer.attn_processors.values()
    }
    assert backends == {"AttentionBackendName._NATIVE_MATH"}
    assert np.abs(result - plain).mean() < 1.0


@pytest.mark.usefixtures("native_attention_after")
def test_an_attention_backend_this_machine_cannot_run_says_so() -> None:
    pipe = make_pipeline("tiny")
    with pytest.raises(ConfigError, match=r"one of: .*native"):
        speed.set_attention_backend(pipe, "warp_drive")
    if importlib.util.find_spec("sageattention") is None:
        with pytest.raises(speed.SpeedUnavailable, match=r"editor\.attention_backend sage"):
            speed.set_attention_backend(pipe, "sage")


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao not installed")
def test_int8_weights_edit_and_take_a_lora(
    make_editor: Callable[..., QwenEditor], tiny_lora: Path
) -> None:
    editor = make_editor(quantize="int8")
    base = pixels(editor)
    assert type(editor.pipeline.transformer.transformer_blocks[0].attn.to_q.weight).__name__ in {
        "Int8Tensor",
        "AffineQuantizedTensor",
    }
    with_lora = Preset(steps=2, true_cfg_scale=1.0, lora=LoraConfig(source=str(tiny_lora)))
    # peft's warning about merging LoRAs into torchao weights would fail this test.
    assert not np.array_equal(pixels(editor, request(with_lora)), base)
    assert np.array_equal(pixels(editor), base)


def test_quantize_without_torchao_stops_before_the_weights_load(
    make_editor: Callable[..., QwenEditor], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = speed.importlib.util.find_spec
    monkeypatch.setattr(
        speed.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torchao" else real(name, *a),
    )
    editor = make_editor(quantize="int8")
    with pytest.raises(speed.SpeedUnavailable, match=r"hotfolder\[gpu\]"):
        editor.load()
    assert editor.base_loads == 0


def test_the_full_size_architecture_has_the_published_sizes() -> None:
    """benchmarks/gpu.py's model: Qwen-Image's 20 B transformer, Qwen2.5-VL-7B-Instruct's
    8.29 B parameters, the Qwen-Image VAE's 127 M (built on the meta device: no memory)."""
    pipe = make_pipeline("full", device="meta", dtype="bfloat16")
    counts = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters())
        for name in ("transformer", "text_encoder", "vae")
    }
    assert round(counts["transformer"] / 1e9, 2) == 20.43
    assert round(counts["text_encoder"] / 1e9, 2) == 8.29
    assert round(counts["vae"] / 1e6) == 127
    assert pipe.transformer.dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32  # put back after the build


@pytest.fixture
def inductor_pools_shut() -> Iterator[None]:
    """Inductor compiles in a thread pool it keeps for the process; end it with the test."""
    yield
    from torch._inductor.async_compile import AsyncCompile, shutdown_compile_workers

    if AsyncCompile.pool.cache_info().currsize:
        AsyncCompile.pool().shutdown(wait=True)
        AsyncCompile.pool.cache_clear()
    shutdown_compile_workers()
    torch._dynamo.reset()


def graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.mark.slow
@pytest.mark.skipif(
    speed.compile_toolchain_problem("cpu") is not None,
    reason=str(speed.compile_toolchain_problem("cpu")),
)
@pytest.mark.usefixtures("inductor_pools_shut")
def test_compile_warms_up_then_preset_switches_do_not_recompile(
    make_editor: Callable[..., QwenEditor], tiny_lora: Path
) -> None:
    torch._dynamo.reset()
    eager = pixels(make_editor())
    editor = make_editor(compile=True)
    assert editor.config.warms_up
    editor.load()
    editor.prepare(BASE)
    before = graphs()
    editor.warm_up(BASE)
    warmed = graphs()
    assert warmed > before, "the warm-up compiled nothing"
    # A job of another shape and instruction after the warm-up compiles nothing new.
    assert np.abs(pixels(editor) - eager).mean() < 2.0
    pixels(editor, request(size=(300, 40)))
    assert graphs() == warmed

    lora = Preset(steps=2, true_cfg_scale=1.0, lora=LoraConfig(source=str(tiny_lora)))
    half = Preset(steps=2, true_cfg_scale=1.0, lora=LoraConfig(source=str(tiny_lora), scale=0.5))
    cycle = [lora, BASE, half, BASE, lora]
    for preset in cycle:  # each new state of the adapters compiles once
        pixels(editor, request(preset))
    after_first_cycle = graphs()
    for preset in cycle:
        pixels(editor, request(preset))
    assert graphs() == after_first_cycle, "switching presets recompiled"
    assert editor.base_loads == 1
