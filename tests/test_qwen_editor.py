"""The qwen editor on a tiny random pipeline: the real diffusers code paths, on the CPU, in seconds."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hotfolder import render
from hotfolder.config import EditorConfig, LoraConfig, Preset
from hotfolder.editors.base import EditRequest, Interrupted, OutOfMemory
from hotfolder.errors import ConfigError, HotfolderError
from hotfolder.slots.base import Pixels, Ticket

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from hotfolder.editors.qwen import EditorUnavailable, QwenEditor  # noqa: E402
from hotfolder.editors.tiny import build_tiny_pipeline, make_tiny_lora  # noqa: E402

# The tiny model generates 64x48 for a 4:3 input; the pipelines still encode the
# conditioning image at ~1 megapixel, which is most of the ~1 s an edit takes here.
MAX_PIXELS = 64 * 64

BASE = Preset(steps=2, true_cfg_scale=1.0)
LIGHTNING = Preset(steps=2, true_cfg_scale=1.0, scheduler="lightning")


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


@pytest.fixture(scope="module")
def editor(tiny_qwen_model: Path) -> QwenEditor:
    """One loaded editor for the module, as the worker keeps one: each test's edits follow others'."""
    config = EditorConfig(
        model=str(tiny_qwen_model), device="cpu", dtype="float32", max_pixels=MAX_PIXELS
    )
    return QwenEditor(config)


@pytest.fixture(scope="module")
def base_pixels(editor: QwenEditor) -> bytes:
    """The base preset's output for `request()` (seed 1)."""
    return pixels(editor, request())


def picture(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def request(
    preset: Preset = BASE,
    *,
    seed: int = 1,
    image: Image.Image | None = None,
    references: tuple[Image.Image, ...] = (),
) -> EditRequest:
    return EditRequest(
        references=references,
        image=image or picture(),
        instruction="make the sky blue",
        seed=seed,
        preset_name="test",
        preset=preset,
        steps=preset.steps,
        true_cfg_scale=preset.true_cfg_scale,
        negative_prompt=preset.negative_prompt,
    )


def no_progress(step: int, steps: int) -> None:
    return None


def pixels(editor: QwenEditor, req: EditRequest) -> bytes:
    result = editor.edit(req, no_progress)
    assert result.image.mode == "RGB"
    return result.image.tobytes()


def test_loads_the_saved_folder_once(make_editor: Callable[..., QwenEditor]) -> None:
    editor = make_editor()
    editor.load()
    editor.load()
    assert editor.base_loads == 1
    assert type(editor.pipeline).__name__ == "QwenImageEditPlusPipeline"
    assert editor.pipeline.transformer.dtype == torch.float32


def test_same_seed_same_pixels_other_seed_other_pixels(
    editor: QwenEditor, base_pixels: bytes, tiny_qwen_model: Path
) -> None:
    result = editor.edit(request(seed=1), no_progress)
    assert (result.model, result.image.mode, result.image.size) == (
        str(tiny_qwen_model),
        "RGB",
        (64, 48),
    )
    assert result.image.tobytes() == base_pixels
    assert pixels(editor, request(seed=2)) != base_pixels


def test_edit_plus_gets_the_image_and_one_or_two_references(
    editor: QwenEditor, base_pixels: bytes
) -> None:
    """Pass: the real edit-plus pipeline conditions on [image, *references]: one reference
    changes the result, a second changes it again, and changing only the second reference's
    pixels changes it too (so the list of three reached the model, in a pickled ticket)."""
    logo, pose, other_pose = picture(seed=5), picture(40, 56, seed=6), picture(40, 56, seed=7)
    one = pixels(editor, request(references=(logo,)))

    def two(second: Image.Image) -> bytes:
        ticket = Ticket.with_image(
            picture(),
            job_id="j",
            name="n",
            icc_profile=None,
            instruction="make the sky blue",
            seed=1,
            preset_name="test",
            preset=BASE,
            steps=BASE.steps,
            true_cfg_scale=BASE.true_cfg_scale,
            negative_prompt=None,
            output_format="png",
            output_quality=92,
            output_size="input",
            timeout_seconds=600,
            references=(Pixels.of(logo), Pixels.of(second)),
        )
        result = render.edit(editor, pickle.loads(pickle.dumps(ticket)), no_progress)
        return result.image.tobytes()

    with_pose = two(pose)
    assert len({base_pixels, one, with_pose}) == 3
    assert two(other_pose) != with_pose


def test_interrupted_stops_at_that_step_and_the_next_edit_is_unaffected(
    editor: QwenEditor, base_pixels: bytes
) -> None:
    seen: list[tuple[int, int]] = []

    def cancel_at_first_step(step: int, steps: int) -> None:
        seen.append((step, steps))
        raise Interrupted("cancelled")

    with pytest.raises(Interrupted, match="cancelled"):
        editor.edit(request(), cancel_at_first_step)
    assert seen == [(1, 2)]

    seen.clear()
    after = editor.edit(request(), lambda step, steps: seen.append((step, steps)))
    assert seen == [(1, 2), (2, 2)]
    assert after.image.tobytes() == base_pixels
    assert editor.base_loads == 1


@pytest.mark.slow
def test_switching_presets_swaps_the_lora_without_reloading(
    editor: QwenEditor, base_pixels: bytes, tiny_lora: Path
) -> None:
    with_lora = Preset(steps=2, true_cfg_scale=1.0, lora=LoraConfig(source=str(tiny_lora)))
    lora = pixels(editor, request(with_lora))
    assert lora != base_pixels
    assert pixels(editor, request()) == base_pixels
    assert pixels(editor, request(with_lora)) == lora
    # Another preset naming the same LoRA reuses its adapter, at its own scale.
    half = Preset(steps=2, true_cfg_scale=1.0, lora=LoraConfig(source=str(tiny_lora), scale=0.5))
    assert pixels(editor, request(half)) not in {base_pixels, lora}
    assert editor.pipeline.get_list_adapters() == {"transformer": ["lora1"]}
    assert editor.base_loads == 1


def test_lightning_preset_swaps_the_scheduler_and_back(
    editor: QwenEditor, base_pixels: bytes
) -> None:
    editor.prepare(BASE)
    default_scheduler = editor.pipeline.scheduler
    lightning = pixels(editor, request(LIGHTNING))
    config = editor.pipeline.scheduler.config
    assert config.base_shift == config.max_shift == pytest.approx(math.log(3))
    assert config.time_shift_type == "exponential"
    assert config.use_dynamic_shifting
    assert config.shift_terminal is None
    assert lightning != base_pixels
    assert pixels(editor, request()) == base_pixels
    assert editor.pipeline.scheduler is default_scheduler


def test_true_cfg_with_a_negative_prompt_changes_the_result(
    editor: QwenEditor, base_pixels: bytes
) -> None:
    guided = Preset(steps=2, true_cfg_scale=4.0, negative_prompt="blurry")
    assert pixels(editor, request(guided)) != base_pixels


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1, 1), (17, 33), (300, 40)])
def test_any_rgb_size_comes_back_rgb_at_the_generated_size(
    editor: QwenEditor, size: tuple[int, int]
) -> None:
    result = editor.edit(request(image=picture(*size)), no_progress)
    assert result.image.mode == "RGB"
    assert result.image.size == editor.output_size(size)
    width, height = result.image.size
    assert width * height <= MAX_PIXELS


def test_output_size_keeps_the_aspect_under_the_cap() -> None:
    editor = QwenEditor(EditorConfig(device="cpu", max_pixels=512 * 512))
    assert editor.output_size((4000, 3000)) == (576, 432)
    assert editor.output_size((100, 100)) == (512, 512)
    assert QwenEditor(EditorConfig(device="cpu")).output_size((4000, 3000)) is None


def test_out_of_memory_becomes_out_of_memory_and_the_editor_recovers(
    editor: QwenEditor, base_pixels: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    # The text encoder runs first, so the simulated OOM comes without a VAE pass.
    monkeypatch.setattr(editor.pipeline.text_encoder, "forward", exhausted)
    with pytest.raises(OutOfMemory, match="out of memory"):
        editor.edit(request(), no_progress)
    monkeypatch.undo()
    assert pixels(editor, request()) == base_pixels


@pytest.mark.slow
def test_the_edit_pipeline_loads_and_edits(tmp_path: Path) -> None:
    folder = build_tiny_pipeline(tmp_path / "tiny-edit", pipeline="edit")
    config = EditorConfig(
        model=str(folder), pipeline="edit", device="cpu", dtype="float32", max_pixels=MAX_PIXELS
    )
    editor = QwenEditor(config)
    result = editor.edit(request(), no_progress)
    assert type(editor.pipeline).__name__ == "QwenImageEditPipeline"
    assert (result.image.mode, result.image.size) == ("RGB", (64, 48))


def test_a_missing_model_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    editor = QwenEditor(EditorConfig(model=str(missing), device="cpu"))
    with pytest.raises(EditorUnavailable, match="does not exist") as caught:
        editor.load()
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, HotfolderError)
    assert editor.base_loads == 0


def test_a_folder_that_is_not_a_pipeline_says_so(tmp_path: Path) -> None:
    editor = QwenEditor(EditorConfig(model=str(tmp_path), device="cpu"))
    with pytest.raises(EditorUnavailable, match=r"model_index\.json"):
        editor.load()


def test_a_hub_model_not_in_the_cache_says_how_to_get_it() -> None:
    editor = QwenEditor(EditorConfig(model="hotfolder-tests/no-such-model", device="cpu"))
    with pytest.raises(EditorUnavailable) as caught:
        editor.load()
    message = str(caught.value)
    assert "hf download hotfolder-tests/no-such-model" in message
    assert "HF_HUB_OFFLINE" in message


def test_a_missing_lora_file_names_it_and_the_base_still_works(
    editor: QwenEditor, base_pixels: bytes, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.safetensors"
    broken = Preset(steps=2, true_cfg_scale=1.0, lora=LoraConfig(source=str(missing)))
    with pytest.raises(EditorUnavailable, match="does not exist") as caught:
        editor.edit(request(broken), no_progress)
    assert str(missing) in str(caught.value)
    assert pixels(editor, request()) == base_pixels


def test_offload_on_the_cpu_is_a_config_error(make_editor: Callable[..., QwenEditor]) -> None:
    editor = make_editor(offload="model")
    with pytest.raises(ConfigError, match=r"editor\.offload"):
        editor.load()
    assert editor.base_loads == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_what_to_do(make_editor: Callable[..., QwenEditor]) -> None:
    editor = make_editor(device="cuda")
    with pytest.raises(EditorUnavailable, match=r"editor\.device: cpu"):
        editor.load()


def test_importing_the_editor_does_not_import_torch() -> None:
    code = "import sys, hotfolder.editors.qwen; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
