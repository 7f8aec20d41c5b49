"""The qwen editor's speed options without a model: validation, the checks made before any
weights load, and the warm-up's place in a slot's start (before it is ready, once)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support import drop_pair, has_status

from hotfolder.config import Config, EditorConfig, Preset, load_config
from hotfolder.editors import speed
from hotfolder.editors.identity import IdentityEditor
from hotfolder.errors import ConfigError
from hotfolder.service import Service, loading_note
from hotfolder.slots.engine import Engine


def config_file(tmp_path: Path, editor: str) -> Path:
    path = tmp_path / "hotfolder.yaml"
    path.write_text(f"editor:\n{editor}")
    return path


def test_the_defaults_change_nothing() -> None:
    editor = EditorConfig()
    assert (editor.compile, editor.attention_backend, editor.quantize) == (False, None, "none")
    assert (editor.vae_tiling, editor.warmup, editor.warms_up) == ("auto", None, False)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("  quantize: fp4\n", "'none', 'fp8' or 'int8'"),
        ("  vae_tiling: sometimes\n", "'auto', 'on' or 'off'"),
        ("  attention_backend: turbo\n", "_native_cudnn"),
        ("  compile: maybe\n", "valid boolean"),
        ("  warmup: later\n", "valid boolean"),
    ],
)
def test_a_bad_value_names_the_key_and_the_choices(tmp_path: Path, line: str, named: str) -> None:
    key = line.split(":", maxsplit=1)[0].strip()
    with pytest.raises(ConfigError, match=rf"editor\.{key}") as caught:
        load_config(config_file(tmp_path, line))
    assert named in str(caught.value)


def test_yaml_on_and_off_mean_on_and_off(tmp_path: Path) -> None:
    assert load_config(config_file(tmp_path, "  vae_tiling: on\n")).editor.vae_tiling == "on"
    assert load_config(config_file(tmp_path, "  vae_tiling: off\n")).editor.vae_tiling == "off"


def test_warmup_follows_compile_unless_set() -> None:
    assert EditorConfig(compile=True).warms_up
    assert not EditorConfig(compile=True, warmup=False).warms_up
    assert EditorConfig(warmup=True).warms_up


def test_fp8_on_the_cpu_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fp8.*compute capability 8\.9.*int8 or none"):
        load_config(config_file(tmp_path, "  device: cpu\n  quantize: fp8\n"))
    assert load_config(config_file(tmp_path, "  quantize: fp8\n")).editor.quantize == "fp8"


def fake_torch(capability: tuple[int, int], name: str = "NVIDIA A100-SXM4-80GB") -> Any:
    cuda = SimpleNamespace(
        is_available=lambda: True,
        get_device_capability=lambda device: capability,
        get_device_name=lambda device: name,
    )
    return SimpleNamespace(cuda=cuda)


@pytest.fixture
def torchao_present(monkeypatch: pytest.MonkeyPatch) -> None:
    real = speed.importlib.util.find_spec
    monkeypatch.setattr(
        speed.importlib.util,
        "find_spec",
        lambda name, *a: SimpleNamespace() if name == "torchao" else real(name, *a),
    )


@pytest.mark.usefixtures("torchao_present")
def test_fp8_below_compute_capability_8_9_names_the_gpu_and_the_fix() -> None:
    config = EditorConfig(quantize="fp8")
    with pytest.raises(ConfigError) as caught:
        speed.check(config, "cuda:0", fake_torch((8, 0)))
    message = str(caught.value)
    assert "NVIDIA A100-SXM4-80GB with 8.0" in message
    assert "editor.quantize: int8" in message
    speed.check(config, "cuda:0", fake_torch((9, 0), "NVIDIA H200"))
    speed.check(config, "cuda:0", fake_torch((8, 9), "NVIDIA L40S"))
    speed.check(EditorConfig(quantize="int8"), "cuda:0", fake_torch((8, 0)))


@pytest.mark.parametrize("kind", ["fp8", "int8"])
def test_quantize_without_torchao_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    real = speed.importlib.util.find_spec
    monkeypatch.setattr(
        speed.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torchao" else real(name, *a),
    )
    with pytest.raises(speed.SpeedUnavailable) as caught:
        speed.check(EditorConfig(quantize=kind), "cuda", fake_torch((9, 0)))
    message = str(caught.value)
    assert "torchao is not installed" in message
    assert "pip install 'hotfolder[gpu]'" in message
    assert "editor.quantize: none" in message


def test_compile_without_a_compiler_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    with pytest.raises(speed.SpeedUnavailable, match=r"C\+\+ compiler.*editor\.compile: false"):
        speed.check(EditorConfig(compile=True), "cpu", fake_torch((9, 0)))
    real = speed.importlib.util.find_spec
    monkeypatch.setattr(
        speed.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "triton" else real(name, *a),
    )
    assert "needs triton" in str(speed.compile_toolchain_problem("cuda:1"))


def test_vae_tiling_auto_tiles_only_large_outputs() -> None:
    assert not speed.use_vae_tiling("auto", (1184, 896))
    assert speed.use_vae_tiling("auto", (2048, 1536))
    assert speed.use_vae_tiling("on", (64, 48))
    assert not speed.use_vae_tiling("off", (4096, 4096))


def test_the_loading_note_says_warming_up_when_it_will() -> None:
    assert loading_note(Config()) == "loading model"
    assert "warming up" in loading_note(Config(editor=EditorConfig(compile=True)))
    assert loading_note(Config(editor=EditorConfig(name="identity", warmup=True))) == (
        "loading model"
    )


class WarmingEditor(IdentityEditor):
    """Records the order of its calls; its warm-up looks at queue.json meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.seen_while_warming: dict[str, Any] | None = None
        self.queue_json: Path | None = None

    def load(self) -> None:
        self.calls.append("load")

    def prepare(self, preset: Preset) -> None:
        self.calls.append("prepare")

    def warm_up(self, preset: Preset) -> None:
        self.calls.append("warm_up")
        if self.queue_json is not None:
            self.seen_while_warming = wait_for_note(self.queue_json, "warming up")

    def edit(self, request: Any, progress: Any) -> Any:
        self.calls.append("edit")
        return super().edit(request, progress)


def wait_for_note(path: Path, text: str, timeout: float = 10) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            data = {}
        if any(text in note for note in data.get("notes", {}).values()):
            return data
        time.sleep(0.02)
    return None


def test_the_engine_warms_up_after_the_preset_and_before_it_is_ready() -> None:
    editor = WarmingEditor()
    events: list[tuple[Any, ...]] = []
    engine = Engine(
        editor,
        lambda event: events.append((*event, list(editor.calls))),
        device="cpu",
        warm_preset=Preset(steps=1),
    )
    assert engine.load()
    assert events == [("ready", "cpu", ["load", "prepare", "warm_up"])]


def test_queue_json_says_warming_up_and_the_first_job_waits_for_it(tmp_path: Path) -> None:
    config = Config(
        root=tmp_path,
        settle_seconds=0,
        editor=EditorConfig(name="qwen", device="cpu", warmup=True),
        default_preset="quick",
        presets={"quick": Preset(steps=1, true_cfg_scale=1.0)},
    )
    drop_pair(tmp_path / "inbox", "IMG_1")
    editor = WarmingEditor()
    editor.queue_json = tmp_path / "outbox" / "queue.json"
    assert Service(config, editor=editor).run(once=True) == 0
    assert editor.seen_while_warming is not None, "queue.json never said warming up"
    assert editor.seen_while_warming["processing_count"] == 0
    assert editor.calls == ["load", "prepare", "warm_up", "edit"]
    assert has_status(tmp_path, "IMG_1", "completed")
    final = json.loads(editor.queue_json.read_bytes())
    assert "editor" not in final["notes"]
