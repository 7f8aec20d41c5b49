"""The Hugging Face hub at start-up: the local cache first, then a quick look at the hub.

Without a network, `from_pretrained` and `load_lora_weights` retried for minutes before they
said a model was missing (issue 14: 3 min 36 s of warnings). So a hub id is looked up in the
cache first and, found, loaded from its folder there with no network at all. Not found:
offline (HF_HUB_OFFLINE) it fails at once; otherwise one request with a short timeout asks
the hub for the files' size, and failing that start-up stops, naming the model, the cache
folder it would go to and the command that fetches it. Local folders never reach this module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from hotfolder.config import EditorConfig, LoraConfig
from hotfolder.editors.weights import (
    DIFFUSERS_LAYOUT,
    EditorUnavailable,
    download_command,
    first_line,
    offline_note,
)

log = logging.getLogger(__name__)

# How long start-up waits for the hub's answer about something that is not cached.
HUB_PROBE_SECONDS: Final = 10.0


def cache_folder(repo: str) -> Path:
    """Where the Hugging Face cache keeps (or would keep) a hub model."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def model_source(config: EditorConfig) -> str:
    """What `from_pretrained` loads for a hub model: its snapshot folder in the cache, or the
    hub id once the hub has said it can be downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    model, revision = config.model, config.revision
    try:
        return str(snapshot_download(model, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    _fetchable(
        f"model {model}",
        model,
        revision,
        None,
        f"or set editor.model to {DIFFUSERS_LAYOUT}",
    )
    return model


def lora_source(lora: LoraConfig, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where `load_lora_weights` finds a hub LoRA: the cached file's folder, or the repo id
    once the hub has said it can be downloaded."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    inside = "/".join(part for part in (lora.subfolder, lora.weight_name) if part)
    if lora.weight_name is not None:
        cached = try_to_load_from_cache(lora.source, inside)
        if isinstance(cached, str):
            return str(Path(cached).parent), {"weight_name": lora.weight_name}
    else:
        try:
            return str(snapshot_download(lora.source, local_files_only=True)), kwargs
        except LocalEntryNotFoundError:
            pass
    fix = "or point the preset's lora.source at a local .safetensors file"
    _fetchable(f"LoRA {lora.source} {inside}".strip(), lora.source, None, inside or None, fix)
    return lora.source, kwargs


def _fetchable(what: str, repo: str, revision: str | None, file: str | None, fix: str) -> None:
    """Fail now unless the hub answers about `repo` (or its `file`); say what will be fetched."""
    where = cache_folder(repo)
    command = download_command(repo, revision, *([file] if file else []))
    advice = f"Download it with `{command}` (HF_HOME chooses the cache), {fix}"
    missing = f"{what} is not in the local Hugging Face cache ({where})"
    if offline_note():
        raise EditorUnavailable(f"{missing}{offline_note()}. {advice}")
    size = _download_size(repo, revision, file, f"{missing} and the hub", advice)
    log.warning(
        "%s: downloading %s into %s; this takes a while (`%s` fetches it beforehand)",
        missing,
        f"{size / 1e9:.1f} GB" if size else "it",
        where,
        command,
    )


def _download_size(
    repo: str, revision: str | None, file: str | None, missing: str, advice: str
) -> int:
    """Bytes to download (0 if the hub does not say); EditorUnavailable when it cannot answer."""
    from huggingface_hub import HfApi, constants

    try:
        info = HfApi().model_info(
            repo, revision=revision, files_metadata=True, timeout=HUB_PROBE_SECONDS
        )
    except Exception as e:  # the client's errors are requests', httpx' or httpx2's, by version
        raise EditorUnavailable(
            f"{missing} ({constants.ENDPOINT}) could not be asked about it: {first_line(e)}. "
            f"{advice}"
        ) from e
    siblings = [s for s in info.siblings or [] if file is None or s.rfilename == file]
    return sum(sibling.size or 0 for sibling in siblings)
