"""Where the qwen editor's weights come from (a hub id, a local folder, a LoRA file) and
the messages that name what is missing and the command that fetches it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final

from hotfolder.config import EditorConfig, LoraConfig
from hotfolder.errors import SetupError

log = logging.getLogger(__name__)

_DIFFUSERS_LAYOUT = "a local folder in diffusers layout (model_index.json, transformer/, vae/, ...)"
# How long start-up asks the hub about a model that is not cached before it gives up: without a
# network, from_pretrained's own retries took minutes to say the same (issue 14).
HUB_PROBE_SECONDS: Final = 10.0


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
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return " (HF_HUB_OFFLINE is set, so nothing is downloaded)"
    return ""


def model_source(model: str) -> str:
    """The hub id or the folder `from_pretrained` loads; raises when a named folder is not one."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise EditorUnavailable(
                f"editor.model {path} is a folder but not a diffusers pipeline (no model_index.json); "
                f"point it at {_DIFFUSERS_LAYOUT}"
            )
        return str(path)
    if path.exists():
        raise EditorUnavailable(f"editor.model {path} is a file; point it at {_DIFFUSERS_LAYOUT}")
    if looks_like_path(model):
        raise EditorUnavailable(
            f"editor.model folder {path} does not exist; point it at {_DIFFUSERS_LAYOUT}, "
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


def hub_folder(repo: str) -> Path:
    """Where the Hugging Face cache keeps (or would keep) a hub model."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def hub_source(config: EditorConfig) -> str:
    """What `from_pretrained` loads for a hub model, checked before any slow download attempt.

    Cached: the snapshot folder in the cache, loaded with no network at all. Not cached: fail
    at once when offline, within HUB_PROBE_SECONDS when the hub cannot be asked, naming the
    model, where it would go and the command that fetches it; otherwise say how much will be
    downloaded, and where, and return the hub id.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    model, revision = config.model, config.revision
    try:
        return str(snapshot_download(model, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    where = hub_folder(model)
    fix = (
        f"Download it with `{download_command(model, revision)}` (HF_HOME chooses the cache), "
        f"or set editor.model to {_DIFFUSERS_LAYOUT}"
    )
    if offline_note():
        raise EditorUnavailable(
            f"model {model} is not in the local Hugging Face cache ({where}){offline_note()}. {fix}"
        )
    size = _hub_size(model, revision, where, fix)
    log.warning(
        "model %s is not in the local Hugging Face cache: downloading %s into %s; "
        "this takes a while (`%s` fetches it beforehand)",
        model,
        f"{size / 1e9:.1f} GB" if size else "it",
        where,
        download_command(model, revision),
    )
    return model


def _hub_size(model: str, revision: str | None, where: Path, fix: str) -> int:
    """The model's size on the hub in bytes (0 if not said); EditorUnavailable if unreachable."""
    from huggingface_hub import HfApi, constants

    try:
        info = HfApi().model_info(
            model, revision=revision, files_metadata=True, timeout=HUB_PROBE_SECONDS
        )
    except Exception as e:  # the client's errors are requests', httpx' or httpx2's, by version
        raise EditorUnavailable(
            f"model {model} is not in the local Hugging Face cache ({where}) and the hub "
            f"({constants.ENDPOINT}) could not be asked about it: {first_line(e)}. {fix}"
        ) from e
    return sum(sibling.size or 0 for sibling in info.siblings or [])


def missing_model_message(config: EditorConfig, error: BaseException) -> str:
    model = config.model
    if Path(model).expanduser().is_dir():
        return (
            f"editor.model {model} could not be loaded as a diffusers pipeline: {first_line(error)}"
        )
    return (
        f"model {model} is not in the local Hugging Face cache and could not be fetched"
        f"{offline_note()}: {first_line(error)}. Download it with "
        f"`{download_command(model, config.revision)}`, or set editor.model to {_DIFFUSERS_LAYOUT}"
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
