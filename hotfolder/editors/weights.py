"""Where the qwen editor's weights come from (a hub id, a local folder, a LoRA file) and
the messages that name what is missing and the command that fetches it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hotfolder.config import EditorConfig, LoraConfig
from hotfolder.errors import SetupError

DIFFUSERS_LAYOUT = "a local folder in diffusers layout (model_index.json, transformer/, vae/, ...)"


class EditorUnavailable(SetupError):
    """The qwen editor cannot start or switch presets: weights, a LoRA or the device are missing."""


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def looks_like_path(text: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else the user wrote is a path."""
    return (
        Path(text).is_absolute()
        or text.startswith((".", "~"))
        or "\\" in text
        or text.count("/") > 1
        or text.endswith((".safetensors", ".bin"))
    )


def offline_note() -> str:
    """Why nothing is downloaded, when huggingface_hub is told so (it heeds both names)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}:
            return f" ({name} is set, so nothing is downloaded)"
    return ""


def model_source(model: str) -> str:
    """The hub id or the folder `from_pretrained` loads; raises when a named folder is not one."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise EditorUnavailable(
                f"editor.model {path} is a folder but not a diffusers pipeline (no model_index.json); "
                f"point it at {DIFFUSERS_LAYOUT}"
            )
        return str(path)
    if path.exists():
        raise EditorUnavailable(f"editor.model {path} is a file; point it at {DIFFUSERS_LAYOUT}")
    if looks_like_path(model):
        raise EditorUnavailable(
            f"editor.model folder {path} does not exist; point it at {DIFFUSERS_LAYOUT}, "
            "or use a hub id such as Qwen/Qwen-Image-Edit-2509"
        )
    return model


def download_command(repo: str, revision: str | None = None, *files: str) -> str:
    """The command that fetches a hub repo into the cache, as the installed huggingface_hub
    spells it (`hf` since 1.0, `huggingface-cli` before)."""
    from huggingface_hub import __version__

    cli = "hf" if int(__version__.split(".")[0]) >= 1 else "huggingface-cli"
    named = [name for name in files if name]
    return " ".join(
        [cli, "download", repo, *named, *(["--revision", revision] if revision else [])]
    )


def missing_model_message(config: EditorConfig, error: BaseException) -> str:
    model = config.model
    if Path(model).expanduser().is_dir():
        return (
            f"editor.model {model} could not be loaded as a diffusers pipeline: {first_line(error)}"
        )
    return (
        f"model {model} is not in the local Hugging Face cache and could not be fetched"
        f"{offline_note()}: {first_line(error)}. Download it with "
        f"`{download_command(model, config.revision)}`, or set editor.model to {DIFFUSERS_LAYOUT}"
    )


def lora_location(lora: LoraConfig) -> tuple[str, dict[str, Any]]:
    """Where `load_lora_weights` finds the LoRA: (repo id or folder, keyword arguments)."""
    path = Path(lora.source).expanduser()
    if path.is_file():
        return str(path.parent), {"weight_name": path.name}
    kwargs = {
        key: value
        for key, value in (("subfolder", lora.subfolder), ("weight_name", lora.weight_name))
        if value is not None
    }
    if path.is_dir():
        return str(path), kwargs
    if looks_like_path(lora.source):
        raise EditorUnavailable(
            f"LoRA {path} does not exist; point the preset's lora.source at a .safetensors file, "
            "a folder holding one, or a hub repo id"
        )
    return lora.source, kwargs


def missing_lora_message(lora: LoraConfig, error: BaseException) -> str:
    if Path(lora.source).expanduser().exists():
        return f"LoRA {lora.source} could not be loaded: {first_line(error)}"
    inside = "/".join(part for part in (lora.subfolder, lora.weight_name) if part)
    return (
        f"LoRA {lora.source} {inside} is not in the local Hugging Face cache and could not be "
        f"fetched{offline_note()}: {first_line(error)}. Download it with "
        f"`{download_command(lora.source, None, inside)}`, or point the preset's "
        "lora.source at a local .safetensors file"
    )
