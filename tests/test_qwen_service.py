"""The qwen editor through the real service and CLI, on the tiny random pipeline (CPU)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support import (
    cli_env,
    drop_pair,
    has_status,
    hotfolder,
    make_image,
    write_config,
    write_sidecar,
)

from hotfolder.editors.tiny import make_tiny_lora
from hotfolder.images import read_metadata

pytestmark = pytest.mark.slow


def qwen_config(root: Path, model: Path | str, **editor: object) -> Path:
    return write_config(
        root,
        editor={
            "name": "qwen",
            "model": str(model),
            "device": "cpu",
            "dtype": "float32",
            "max_pixels": 4096,
            **editor,
        },
        presets={"tiny": {"steps": 2, "true_cfg_scale": 1.0, "nominal_seconds": 1}},
        default_preset="tiny",
    )


def test_run_once_with_the_qwen_editor_edits_real_drops(
    tmp_path: Path, tiny_qwen_model: Path
) -> None:
    qwen_config(tmp_path, tiny_qwen_model)
    drop_pair(tmp_path / "inbox" / "st", "IMG_1", seed=9)
    make_image(tmp_path / "inbox" / "IMG_2.png", size=(160, 120))
    write_sidecar(tmp_path / "inbox" / "IMG_2.yaml", output={"format": "webp", "size": "model"})
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    first = has_status(tmp_path, "st/IMG_1", "completed")
    second = has_status(tmp_path, "IMG_2", "completed")
    assert first is not None, result.stderr[-3000:]
    assert second is not None
    assert first["model"] == "tiny"
    assert first["result_seed"] == 9
    data = (tmp_path / first["result_path"]).read_bytes()
    assert read_metadata(data)["seed"] == "9"
    with Image.open(tmp_path / first["result_path"]) as im:
        assert im.size == (64, 48)  # resized back to the input
    with Image.open(tmp_path / second["result_path"]) as im:
        assert im.format == "WEBP"
        assert im.size == (64, 48)  # output.size: model keeps the model size, not 160x120


def test_edit_one_image_from_the_command_line(tmp_path: Path, tiny_qwen_model: Path) -> None:
    config = qwen_config(tmp_path, tiny_qwen_model)
    image = make_image(tmp_path / "photo.jpg")
    out = tmp_path / "edited.png"
    result = hotfolder(
        "edit", str(image), "-i", "make it warmer", "--seed", "4", "-o", str(out),
        "--config", str(config), cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.exists()
    assert read_metadata(out.read_bytes())["instruction"] == "make it warmer"


def test_a_missing_model_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    qwen_config(tmp_path, tmp_path / "no-such-model")
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "no-such-model" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr


def test_selftest_passes_on_the_cpu(tmp_path: Path) -> None:
    result = hotfolder("selftest", "--device", "cpu", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "selftest passed" in result.stdout
    assert "FAIL" not in result.stdout


def test_warm_up_runs_once_in_the_worker_before_the_first_job(
    tmp_path: Path, tiny_qwen_model: Path
) -> None:
    qwen_config(tmp_path, tiny_qwen_model, warmup=True)
    drop_pair(tmp_path / "inbox", "IMG_1", seed=3)
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert has_status(tmp_path, "IMG_1", "completed")
    log = result.stderr
    assert log.count("warmed up on cpu") == 1, log[-3000:]
    assert log.index("warmed up on cpu") < log.index("processing IMG_1"), log[-3000:]


@pytest.fixture
def no_hub(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a machine without a network: HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE)
    unset, the hub endpoint a local port that refuses connections (bound, never listening), the
    cache in tmp_path."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    offline = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in cli_env().items() if k not in offline}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env["HF_HOME"] = str(tmp_path / "hf")
    try:
        yield env
    finally:
        closed.close()


def run_once(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", "run", "--once", "--root", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # minutes of retries were the bug; the generous deadline is the check
        check=False,
    )


def test_a_hub_model_not_cached_without_a_network_fails_fast(
    tmp_path: Path, no_hub: dict[str, str]
) -> None:
    qwen_config(tmp_path, "hotfolder-tests/no-such-model")
    result = run_once(tmp_path, no_hub)
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr
    assert "hotfolder-tests/no-such-model" in message
    assert str(tmp_path / "hf" / "hub" / "models--hotfolder-tests--no-such-model") in message
    assert "`hf download hotfolder-tests/no-such-model`" in message
    assert "could not be asked about it" in message and "Connection refused" in message


def test_a_cached_hub_model_loads_from_the_cache_alone(
    tmp_path: Path, no_hub: dict[str, str], tiny_qwen_model: Path
) -> None:
    shutil.copytree(tiny_qwen_model, cache_repo(tmp_path / "hf", "hotfolder-tests/tiny"))
    qwen_config(tmp_path, "hotfolder-tests/tiny")
    drop_pair(tmp_path / "inbox", "IMG_1", seed=2)
    result = run_once(tmp_path, no_hub)
    assert result.returncode == 0, result.stderr[-3000:]
    assert has_status(tmp_path, "IMG_1", "completed") is not None, result.stderr[-3000:]


def test_a_local_model_folder_loads_without_asking_the_hub(
    tmp_path: Path, no_hub: dict[str, str], tiny_qwen_model: Path
) -> None:
    qwen_config(tmp_path, tiny_qwen_model)
    drop_pair(tmp_path / "inbox", "IMG_1", seed=2)
    result = run_once(tmp_path, no_hub)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "could not be asked" not in result.stderr
    assert has_status(tmp_path, "IMG_1", "completed") is not None, result.stderr[-3000:]


def cache_repo(home: Path, repo: str) -> Path:
    """A snapshot folder in the Hugging Face cache's own layout (refs/main names it)."""
    folder = home / "hub" / ("models--" + repo.replace("/", "--"))
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    return folder / "snapshots" / commit


def lora_config(root: Path, model: Path, source: str) -> None:
    lora = {"source": source, "weight_name": "tiny.safetensors"}
    write_config(
        root,
        editor={"name": "qwen", "model": str(model), "device": "cpu", "dtype": "float32"},
        presets={"tiny": {"steps": 2, "true_cfg_scale": 1.0, "nominal_seconds": 1, "lora": lora}},
        default_preset="tiny",
    )


def test_a_cached_hub_lora_loads_from_the_cache_alone(
    tmp_path: Path, no_hub: dict[str, str], tiny_qwen_model: Path
) -> None:
    snapshot = cache_repo(tmp_path / "hf", "hotfolder-tests/tiny-lora")
    make_tiny_lora(tiny_qwen_model, snapshot / "tiny.safetensors")
    lora_config(tmp_path, tiny_qwen_model, "hotfolder-tests/tiny-lora")
    drop_pair(tmp_path / "inbox", "IMG_1", seed=2)
    result = run_once(tmp_path, no_hub)
    assert result.returncode == 0, result.stderr[-3000:]
    assert has_status(tmp_path, "IMG_1", "completed") is not None, result.stderr[-3000:]


def test_a_hub_lora_not_cached_without_a_network_fails_fast(
    tmp_path: Path, no_hub: dict[str, str], tiny_qwen_model: Path
) -> None:
    lora_config(tmp_path, tiny_qwen_model, "hotfolder-tests/no-such-lora")
    drop_pair(tmp_path / "inbox", "IMG_1", seed=2)
    result = run_once(tmp_path, no_hub)
    message = result.stderr
    assert result.returncode == 2, message[-3000:]
    assert "`hf download hotfolder-tests/no-such-lora tiny.safetensors`" in message, message
    assert str(tmp_path / "hf" / "hub" / "models--hotfolder-tests--no-such-lora") in message
    assert "Connection refused" in message
