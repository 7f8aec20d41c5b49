"""The qwen editor's speed options: regional compilation, attention backend, torchao
quantization and VAE tiling (docs/gpu.md says which to use on which GPU).

Each is applied once, when the editor loads; none reloads or changes the base weights'
values except `quantize`, which is why a LoRA is loaded on top of quantized weights and
never merged into them. torch, diffusers and torchao are imported here only when used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import warnings
from collections.abc import Iterator
from typing import Any, Final

from hotfolder.config import EditorConfig
from hotfolder.editors.weights import first_line
from hotfolder.errors import ConfigError, HotfolderError

log = logging.getLogger(__name__)

# fp8 matrix multiplies (torchao's rowwise fp8) need Ada or Hopper: compute capability 8.9+.
FP8_MIN_CAPABILITY: Final = (8, 9)

# `vae_tiling: auto` tiles the VAE for outputs above this many pixels (1600x1250): at the
# pipelines' default ~1 megapixel the whole image decodes in one piece, faster and seamless.
VAE_TILING_AUTO_PIXELS: Final = 2_000_000

# Distinct preset states (LoRA adapter, scale, enabled or not) and shapes each add a compiled
# graph for the transformer block; torch's default of 8 would send the rest back to eager.
RECOMPILE_LIMIT: Final = 64

GPU_EXTRA: Final = "pip install 'hotfolder[gpu]' (or pip install torchao)"


class SpeedUnavailable(HotfolderError):
    """A speed option cannot work on this machine: a package, a compiler or the GPU is missing."""


def check(config: EditorConfig, device: str, torch: Any) -> None:
    """Refuse, before any weights load, the options this machine cannot run."""
    if config.quantize != "none":
        _check_quantize(config.quantize, device, torch)
    if config.compile:
        problem = compile_toolchain_problem(device)
        if problem is not None:
            raise SpeedUnavailable(problem)


def _check_quantize(quantize: str, device: str, torch: Any) -> None:
    # The hardware first: installing torchao would not help a GPU without fp8.
    if quantize == "fp8":
        _check_fp8_device(device, torch)
    if importlib.util.find_spec("torchao") is None:
        raise SpeedUnavailable(
            f"editor.quantize is {quantize} but torchao is not installed; {GPU_EXTRA}, "
            "or set editor.quantize: none"
        )


def _check_fp8_device(device: str, torch: Any) -> None:
    if not device.startswith("cuda"):
        raise ConfigError(
            f"editor.quantize fp8 needs a CUDA GPU with compute capability "
            f"{fp8_capability_text()} or newer; editor.device is {device}: use editor.quantize: "
            "int8 or none"
        )
    if not torch.cuda.is_available():
        return  # the device check that follows says what is wrong with CUDA
    capability = tuple(torch.cuda.get_device_capability(device))
    if not fp8_supported(capability):
        name = torch.cuda.get_device_name(device)
        raise ConfigError(
            f"editor.quantize fp8 needs a GPU with compute capability {fp8_capability_text()} "
            f"or newer (L4, L40S, RTX 4090, H100, H200); {device} is {name} with "
            f"{capability[0]}.{capability[1]}: use editor.quantize: int8 (or none) on this GPU"
        )


def fp8_supported(capability: tuple[int, ...]) -> bool:
    return tuple(capability[:2]) >= FP8_MIN_CAPABILITY


def fp8_capability_text() -> str:
    return ".".join(str(part) for part in FP8_MIN_CAPABILITY)


def compile_toolchain_problem(device: str) -> str | None:
    """Why torch.compile's inductor cannot build kernels for `device` here, or None."""
    if device.startswith("cuda"):
        if importlib.util.find_spec("triton") is None:
            return (
                "editor.compile: true on a CUDA device needs triton (it comes with the CUDA "
                "builds of torch); reinstall torch for CUDA, or set editor.compile: false"
            )
        return None
    if not any(shutil.which(name) for name in ("g++", "c++", "clang++")):
        return (
            "editor.compile: true on the CPU needs a C++ compiler for torch.compile's inductor "
            "(e.g. apt-get install g++); install one, or set editor.compile: false"
        )
    return None


def quantize(pipe: Any, kind: str, device: str | None = None) -> None:
    """Quantize the transformer's linear layers in place with torchao (`fp8` or `int8`).

    With `device`, each layer is moved there just before it is quantized (torchao's own
    `device`): seconds on a GPU, and the unquantized transformer never needs to fit there.
    """
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int8DynamicActivationInt8WeightConfig,
        PerRow,
        quantize_,
    )

    if kind == "fp8":
        # Rowwise scales: the accurate fp8 recipe, and the fast one on Hopper.
        settings: Any = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    else:
        settings = Int8DynamicActivationInt8WeightConfig()
    quantize_(pipe.transformer, settings, device=device)
    log.info("quantized the transformer's linear layers to %s (torchao)", kind)


@contextlib.contextmanager
def lora_on_quantized() -> Iterator[None]:
    """peft warns that a LoRA on torchao weights cannot be merged; the editor never merges one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*without `get_apply_tensor_subclass`")
        yield


def set_attention_backend(pipe: Any, backend: str) -> None:
    """Make `backend` the transformer's attention; a package it needs must be installed."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    known = [item.value for item in AttentionBackendName]
    if backend not in known:
        raise ConfigError(
            f"editor.attention_backend {backend!r} is not one this diffusers knows; use null "
            f"(the default) or one of: {', '.join(known)}"
        )
    try:
        pipe.transformer.set_attention_backend(backend)
    except (RuntimeError, ImportError, ValueError) as e:
        raise SpeedUnavailable(
            f"editor.attention_backend {backend} cannot be used here: {first_line(e)}; "
            "install what it names, pick another backend (docs/gpu.md), or set it to null"
        ) from e
    log.info("attention backend: %s", backend)


def compile_blocks(pipe: Any, torch: Any) -> None:
    """Regional compilation: each repeated transformer block is compiled once and reused.

    Compilation itself happens at the first edit (the warm-up, when it is on).
    """
    dynamo_config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))
            break
    transformer = pipe.transformer
    if getattr(transformer, "_repeated_blocks", None) and hasattr(
        transformer, "compile_repeated_blocks"
    ):
        transformer.compile_repeated_blocks(fullgraph=True)
    else:
        for block in transformer.transformer_blocks:
            block.compile(fullgraph=True)
    log.info("compiling the transformer's blocks (regional torch.compile) at the first edit")


def use_vae_tiling(mode: str, size: tuple[int, int]) -> bool:
    """Whether the VAE works in tiles for an output of `size` (width, height)."""
    if mode == "auto":
        return size[0] * size[1] > VAE_TILING_AUTO_PIXELS
    return mode == "on"


def set_vae_tiling(pipe: Any, on: bool) -> None:
    vae = pipe.vae
    if bool(getattr(vae, "use_tiling", False)) == on:
        return
    if on:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
