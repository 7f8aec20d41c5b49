"""The production editor: Qwen-Image-Edit through diffusers.

torch and diffusers are imported here only, and only when the editor loads, so the
rest of the service runs without them. The base weights load once; presets switch
the scheduler and LoRA adapters on the loaded pipeline between jobs.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.util
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from PIL import Image

from hotfolder.config import EditorConfig, LoraConfig, Preset
from hotfolder.editors import hub, speed, weights
from hotfolder.editors.base import EditRequest, EditResult, OutOfMemory, ProgressFn
from hotfolder.editors.weights import EditorUnavailable, first_line
from hotfolder.errors import ConfigError, HotfolderError

__all__ = [
    "LIGHTNING_SCHEDULER_CONFIG",
    "PIPELINE_CLASSES",
    "WARMUP_EDITS",
    "EditorUnavailable",
    "QwenEditor",
    "has_torchvision",
    "image_only_processor_class",
]

log = logging.getLogger(__name__)

PIPELINE_CLASSES: Final = {
    "edit": "QwenImageEditPipeline",
    "edit-plus": "QwenImageEditPlusPipeline",
}

# The scheduler the Lightning LoRAs were distilled with, as published by their authors
# (ModelTC/Qwen-Image-Lightning, generate_with_diffusers.py): a fixed shift of 3
# (base_shift = max_shift = log 3) and no terminal stretch.
LIGHTNING_SCHEDULER_CONFIG: Final[Mapping[str, Any]] = {
    "base_image_seq_len": 256,
    "base_shift": math.log(3),
    "invert_sigmas": False,
    "max_image_seq_len": 8192,
    "max_shift": math.log(3),
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": None,
    "stochastic_sampling": False,
    "time_shift_type": "exponential",
    "use_beta_sigmas": False,
    "use_dynamic_shifting": True,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}

# The warm-up's edits: (input width, height) and instruction. With compile on, the second
# has another number of image tokens and a longer prompt, so torch.compile makes its graphs
# shape-generic now (its automatic dynamic shapes) instead of at the first jobs.
WARMUP_EDITS: Final = (
    ((1024, 768), "make the sky blue"),
    ((768, 768), "replace the background with a plain light grey studio wall, keep the rest"),
)


def has_torchvision() -> bool:
    """transformers' Qwen2-VL processor needs torchvision for its video half and fast image path."""
    return importlib.util.find_spec("torchvision") is not None


@functools.cache
def image_only_processor_class() -> type[Any]:
    """A Qwen2VLProcessor without its video processor, for installs without torchvision.

    transformers derives a processor's parts from its `__init__` signature, so a subclass
    that does not name `video_processor` neither builds nor checks one; the pipelines pass
    only images. It saves itself under the real class name, so a folder it wrote looks
    like the real checkpoint.
    """
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):  # type: ignore[misc]
        def __init__(
            self,
            image_processor: Any = None,
            tokenizer: Any = None,
            chat_template: str | None = None,
            **kwargs: Any,
        ) -> None:
            # What Qwen2VLProcessor.__init__ sets before handing over to ProcessorMixin.
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

        def to_dict(self) -> dict[str, Any]:
            data: dict[str, Any] = super().to_dict()
            data["processor_class"] = "Qwen2VLProcessor"
            return data

    return ImageOnlyQwen2VLProcessor


def _oom_errors(torch: Any) -> tuple[type[BaseException], ...]:
    # torch.OutOfMemoryError (torch >= 2.5) is what torch.cuda.OutOfMemoryError now aliases.
    return tuple(
        {
            getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
            torch.cuda.OutOfMemoryError,
        }
    )


def _free_memory(torch: Any) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _dtype_kwarg() -> str:
    """diffusers 0.42 renamed `torch_dtype` to `dtype` (the old name warns); older ones know only the old."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


class QwenEditor:
    """Qwen-Image-Edit (or -2509 with `pipeline: edit-plus`) on one device.

    `base_loads` counts loads of the base weights; it stays 1 however often presets switch.
    `build`, if given, makes the pipeline in place of `from_pretrained` (benchmarks/gpu.py: the
    full-size architecture with random weights, built on the device); the options apply alike.
    """

    name = "qwen"

    def __init__(self, editor: EditorConfig, *, build: Callable[[], Any] | None = None) -> None:
        self.config = editor
        # One editor, one device: a slot of its own for each entry of a device list.
        self.device = editor.devices[0]
        self.base_loads = 0
        self.warmups = 0
        self.warmup_seconds: float | None = None
        self._build = build
        self._torch: Any = None
        self._pipe: Any = None
        self._default_scheduler: Any = None
        self._lightning_scheduler: Any = None
        # One peft adapter per distinct LoRA file, loaded the first time a preset needs it.
        self._adapters: dict[tuple[str, str | None, str | None], str] = {}

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (None before `load`)."""
        return self._pipe

    def load(self) -> None:
        """Load the base weights onto the device, once, and apply the speed options."""
        if self._pipe is not None:
            return
        torch, diffusers = self._import()
        self._check_device(torch)
        speed.check(self.config, self.device, torch)
        pipe = self._build() if self._build is not None else self._from_pretrained(torch, diffusers)
        self.base_loads += 1
        pipe.set_progress_bar_config(disable=True)  # progress goes to status files, not stderr
        quantize = self.config.quantize
        try:
            if quantize != "none":
                # Before the offload hooks move weights around; without offload, each layer
                # is quantized as it reaches the device, so the transformer's bf16 weights are
                # never all there at once (the peak is the quantized pipeline's size).
                onto = self.device if self.config.offload == "none" else None
                speed.quantize(pipe, quantize, device=onto)
            self._place(pipe)
        except _oom_errors(torch) as e:
            del pipe
            e.__traceback__ = None  # its frames hold the pipeline
            _free_memory(torch)
            raise EditorUnavailable(
                f"{self.device} has too little free memory for {self.config.model} in "
                f"{self.config.dtype} ({first_line(e)}); try editor.offload: model (or sequential)"
            ) from e
        if self.config.attention_backend is not None:
            speed.set_attention_backend(pipe, self.config.attention_backend)
        if self.config.compile:
            speed.compile_blocks(pipe, torch)
        if self.device == "cpu" and self.config.dtype != "float32":
            log.warning(
                "editor.dtype %s on the CPU is very slow; float32 is faster there",
                self.config.dtype,
            )
        self._torch = torch
        self._pipe = pipe
        self._default_scheduler = pipe.scheduler
        log.info("loaded %s (%s) on %s", self.config.model, type(pipe).__name__, self.device)

    def warm_up(self, preset: Preset) -> None:
        """With `warmup` on, edit once with `preset` (twice with compile), once per editor, so
        the first job pays for no compilation, kernel selection or memory growth."""
        if not self.config.warms_up or self.warmups:
            return
        started = time.monotonic()
        edits = WARMUP_EDITS if self.config.compile else WARMUP_EDITS[:1]
        for (width, height), instruction in edits:
            request = EditRequest(
                image=Image.linear_gradient("L").resize((width, height)).convert("RGB"),
                instruction=instruction,
                seed=0,
                preset_name="warm-up",
                preset=preset,
                steps=preset.steps,
                true_cfg_scale=preset.true_cfg_scale,
                negative_prompt=preset.negative_prompt,
            )
            try:
                self.edit(request, lambda _step, _steps: None)
            except HotfolderError:
                raise
            except Exception as e:  # a compiler or kernel failure: say which option to drop
                raise EditorUnavailable(
                    f"the warm-up edit failed on {self.device}: {type(e).__name__}: "
                    f"{first_line(e)}; try without editor.compile, attention_backend or "
                    "quantize (docs/gpu.md)"
                ) from e
        self.warmups += 1
        self.warmup_seconds = time.monotonic() - started
        log.info("warmed up on %s in %.1f s", self.device, self.warmup_seconds)

    def prepare(self, preset: Preset) -> None:
        """Make `preset`'s scheduler and LoRA the active ones; a LoRA loads the first time it is used.

        Never reloads the base weights. The service may call this at start for the default
        preset, so a missing LoRA shows up before the first job.
        """
        self.load()
        pipe = self._pipe
        if preset.scheduler == "lightning":
            pipe.scheduler = self._lightning()
        else:
            pipe.scheduler = self._default_scheduler
        if preset.lora is None:
            if self._adapters:
                pipe.disable_lora()
            return
        adapter = self._adapter(preset.lora)
        # disable_lora() sticks until enable_lora(); set_adapters alone would not undo it.
        pipe.enable_lora()
        pipe.set_adapters([adapter], adapter_weights=[preset.lora.scale])

    def edit(self, request: EditRequest, progress: ProgressFn) -> EditResult:
        """Edit one RGB image; `progress(step, steps)` after each step may raise Interrupted."""
        self.prepare(request.preset)
        torch = self._torch
        steps = request.steps

        def on_step_end(
            _pipe: Any, index: int, _timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            # An Interrupted raised here leaves the pipeline between steps; every call starts
            # afresh (timesteps, interrupt flag, generator), so the next job is unaffected.
            progress(index + 1, steps)
            return tensors

        kwargs: dict[str, Any] = {
            # edit-plus takes a list: the image to edit first, then the reference images.
            "image": [request.image, *request.references] if request.references else request.image,
            "prompt": request.instruction,
            "num_inference_steps": steps,
            "true_cfg_scale": request.true_cfg_scale,
            "negative_prompt": self._negative_prompt(request),
            "generator": torch.Generator(device=self.device).manual_seed(request.seed),
            "callback_on_step_end": on_step_end,
            "output_type": "pil",
        }
        size = self.output_size(request.image.size)
        if size is not None:
            kwargs["width"], kwargs["height"] = size
        # Without max_pixels the pipelines generate about one megapixel.
        generated = size or (1024, 1024)
        speed.set_vae_tiling(self._pipe, speed.use_vae_tiling(self.config.vae_tiling, generated))
        out_of_memory: BaseException | None = None
        try:
            output = self._pipe(**kwargs)
        except _oom_errors(torch) as e:
            out_of_memory = e
            # The traceback's frames hold the step's activations; drop them so the cache can go.
            e.__traceback__ = None
        if out_of_memory is not None:
            _free_memory(torch)
            raise OutOfMemory(
                f"{self.device} ran out of memory editing a {request.image.width}x"
                f"{request.image.height} image with preset {request.preset_name}: "
                f"{first_line(out_of_memory)}"
            ) from out_of_memory
        image: Image.Image = output.images[0]
        if image.mode != "RGB":
            image = image.convert("RGB")
        return EditResult(image=image, model=self.config.model)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int] | None:
        """(width, height) to generate at under `max_pixels`; None leaves it to the pipeline."""
        if self.config.max_pixels is None:
            return None
        width, height = input_size
        ratio = width / height
        scaled_width = math.sqrt(self.config.max_pixels * ratio)
        # Sides in multiples of 16 (the VAE's 8x times the transformer's 2x2 patches), rounded
        # down so the area stays under the cap.
        side = 16
        return (
            max(side, int(scaled_width) // side * side),
            max(side, int(scaled_width / ratio) // side * side),
        )

    # -- internals ---------------------------------------------------------------------------

    def _from_pretrained(self, torch: Any, diffusers: Any) -> Any:
        source = weights.model_source(self.config.model)
        pipeline_class = getattr(diffusers, PIPELINE_CLASSES[self.config.pipeline])
        if not Path(source).is_dir():
            # A hub id: from the cache alone, or after a quick look at the hub.
            source = hub.model_source(self.config)
        kwargs: dict[str, Any] = {
            _dtype_kwarg(): getattr(torch, self.config.dtype),
            "revision": self.config.revision,
        }
        try:
            if not has_torchvision():
                kwargs["processor"] = image_only_processor_class().from_pretrained(
                    source, subfolder="processor", revision=self.config.revision
                )
            return pipeline_class.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as e:
            raise EditorUnavailable(weights.missing_model_message(self.config, e)) from e

    def _place(self, pipe: Any) -> None:
        """Put the pipeline on the device, or arm diffusers' offload hooks."""
        if self.config.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.config.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)

    @staticmethod
    def _import() -> tuple[Any, Any]:
        try:
            import diffusers
            import torch
        except ImportError as e:
            raise EditorUnavailable(
                f"the qwen editor needs torch and diffusers ({e}); install the project's dependencies, "
                "or set editor.name: identity"
            ) from e
        return torch, diffusers

    def _check_device(self, torch: Any) -> None:
        device, offload = self.device, self.config.offload
        if not device.startswith("cuda"):
            if offload != "none":
                raise ConfigError(
                    f"editor.offload {offload!r} needs a CUDA device; set editor.offload: none "
                    f"for editor.device: {device}"
                )
            return
        if not torch.cuda.is_available():
            build = (
                "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            )
            raise EditorUnavailable(
                f"editor.device is {device} but torch {torch.__version__} ({build}) sees no CUDA GPU; "
                "install a CUDA build of torch and check the driver (nvidia-smi), or set editor.device: cpu"
            )
        index = int(device.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise EditorUnavailable(
                f"editor.device is {device} but torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )

    def _lightning(self) -> Any:
        if self._lightning_scheduler is None:
            from diffusers import FlowMatchEulerDiscreteScheduler

            self._lightning_scheduler = FlowMatchEulerDiscreteScheduler.from_config(
                dict(LIGHTNING_SCHEDULER_CONFIG)
            )
        return self._lightning_scheduler

    def _adapter(self, lora: LoraConfig) -> str:
        key = (lora.source, lora.subfolder, lora.weight_name)
        if key in self._adapters:
            return self._adapters[key]
        name = f"lora{len(self._adapters) + 1}"
        where, kwargs = weights.lora_location(lora)
        if not Path(where).is_dir():  # a hub repo: from the cache alone, or a quick look first
            where, kwargs = hub.lora_source(lora, kwargs)
        try:
            with speed.lora_on_quantized():
                self._pipe.load_lora_weights(where, adapter_name=name, **kwargs)
        except _oom_errors(self._torch) as e:
            self._forget_adapter(name)
            _free_memory(self._torch)
            raise OutOfMemory(f"out of memory loading LoRA {lora.source}: {first_line(e)}") from e
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            self._forget_adapter(name)
            raise EditorUnavailable(weights.missing_lora_message(lora, e)) from e
        self._adapters[key] = name
        log.info("loaded LoRA %s as adapter %s", lora.source, name)
        return name

    def _forget_adapter(self, name: str) -> None:
        """Remove whatever part of a failed LoRA load peft had registered."""
        with contextlib.suppress(ValueError, KeyError, AttributeError):
            self._pipe.delete_adapters(name)

    def _negative_prompt(self, request: EditRequest) -> str | None:
        # diffusers runs true CFG only with a negative prompt; a scale above 1 asks for CFG,
        # so supply the blank one the model card uses. At or below 1 it would be ignored
        # (with a warning), so leave it out.
        if request.true_cfg_scale <= 1:
            return None
        return request.negative_prompt if request.negative_prompt is not None else " "
