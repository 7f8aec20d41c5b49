"""Configuration: loaded once, validated at start-up, errors name the key and the fix."""

from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hotfolder.errors import ConfigError, describe_validation_error
from hotfolder.yamltext import decode, explain

DEFAULT_CONFIG_PATH = Path("config") / "hotfolder.yaml"

LIGHTNING_REPO = "lightx2v/Qwen-Image-Lightning"


class _Strict(BaseModel):
    # `settle_seconds: .inf` would never settle anything: every number is a finite one.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _as_meant(cls, data: Any) -> Any:
        """A key left empty (`notify:` with every line under it commented out) is a key not
        given: its default. `max_pending: true` (YAML also reads `yes` and `on` so) is a
        mistake, which pydantic would take as 1 for a number."""
        if not isinstance(data, dict):
            return data
        for key, value in data.items():
            field = cls.model_fields.get(key)
            if isinstance(value, bool) and field is not None and _numeric(field.annotation):
                raise ValueError(f"{key} must be a number, not {str(value).lower()}")
        return {
            key: value
            for key, value in data.items()
            if value is not None or key not in cls.model_fields or _nullable(cls, key)
        }


def _nullable(model: type[BaseModel], key: str) -> bool:
    """Whether the field takes None as a value of its own (`max_pending: null`: no cap)."""
    return type(None) in typing.get_args(model.model_fields[key].annotation)


def _numeric(annotation: Any) -> bool:
    """Whether a field takes a number (an int or float, or None besides)."""
    kinds = set(typing.get_args(annotation)) or {annotation}
    return bool(kinds & {int, float}) and kinds <= {int, float, type(None)}


class Limits(_Strict):
    max_file_bytes: int = Field(10_000_000, gt=0)
    max_dimension: int = Field(2048, gt=0)
    max_instruction_chars: int = Field(500, gt=0)
    max_sidecar_bytes: int = Field(65_536, gt=0)
    # Camera RAW files (.dng .cr2 .nef ...) may be this big; every other image max_file_bytes.
    max_raw_bytes: int = Field(150_000_000, gt=0)
    # An image over max_dimension: reject (too_large) or fit (scaled down for the edit, the
    # result scaled back to the original size with output.size: input).
    oversize: Literal["reject", "fit"] = "reject"
    # A sidecar asking for more steps is invalid_sidecar: one station cannot hold a device for
    # the whole job timeout with `steps: 1000` (presets are the operator's and are not capped).
    max_steps: int = Field(50, ge=1)


# An allowed notification host: a name (`hooks.example.lan`, `127.0.0.1`) or `*.` and a domain.
HOST_PATTERN = re.compile(r"(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[?[0-9A-Fa-f:.]+\]?")


class NotifyConfig(_Strict):
    # Hosts a sidecar's notify_url may name; empty: notifications are off (a notify_url is
    # invalid_sidecar). Exact names, or `*.example.lan` for every name under example.lan.
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not HOST_PATTERN.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name; write a bare name like hooks.example.lan "
                    "or *.example.lan (no scheme, port or path)"
                )
        return [host.lower().strip("[]").rstrip(".") for host in value]


class PerStation(_Strict):
    # At most this many queued jobs per station (a top-level folder of inbox/); null: no limit.
    max_pending: int | None = Field(None, ge=1)


class LoraConfig(_Strict):
    """A LoRA applied on top of the base weights: a hub repo id, a local folder or a local file."""

    source: str = Field(min_length=1)
    subfolder: str | None = None
    weight_name: str | None = None
    scale: float = 1.0


class Preset(_Strict):
    steps: int = Field(ge=1, le=1000)
    true_cfg_scale: float = Field(4.0, ge=0)
    negative_prompt: str | None = None
    # Seeds the estimated wait before real timings exist.
    nominal_seconds: float = Field(60.0, gt=0)
    # default: the checkpoint's own scheduler; lightning: the Lightning authors' scheduler config.
    scheduler: Literal["default", "lightning"] = "default"
    lora: LoraConfig | None = None
    # A job running longer than this fails with `timeout`; default: 10x nominal, at least 600 s.
    job_timeout_seconds: float | None = Field(None, gt=0)

    @property
    def timeout_seconds(self) -> float:
        if self.job_timeout_seconds is not None:
            return self.job_timeout_seconds
        return max(600.0, 10 * self.nominal_seconds)


def _lightning(steps: int, nominal_seconds: float) -> Preset:
    return Preset(
        steps=steps,
        true_cfg_scale=1.0,
        nominal_seconds=nominal_seconds,
        scheduler="lightning",
        lora=LoraConfig(
            source=LIGHTNING_REPO,
            subfolder="Qwen-Image-Edit-2509",
            weight_name=f"Qwen-Image-Edit-2509-Lightning-{steps}steps-V1.0-bf16.safetensors",
        ),
    )


BUILTIN_PRESETS: dict[str, Preset] = {
    "qwen-4step": _lightning(4, 20.0),
    "qwen-8step": _lightning(8, 40.0),
    "qwen-40step": Preset(steps=40, true_cfg_scale=4.0, negative_prompt=" ", nominal_seconds=180.0),
}


DEVICE_PATTERN = re.compile(r"cpu|cuda|cuda:\d+")

# diffusers' AttentionBackendName values (0.42; the editor checks the installed version's list
# again when it loads). Most need a package or a GPU of their own: docs/gpu.md says which.
ATTENTION_BACKENDS = (
    "native", "_native_cudnn", "_native_efficient", "_native_flash", "_native_math",
    "_native_npu", "_native_xla", "flex", "flash", "flash_varlen", "_flash_3",
    "_flash_varlen_3", "flash_hub", "flash_varlen_hub", "flash_4_hub", "_flash_3_hub",
    "_flash_3_varlen_hub", "aiter_fa2_hub", "sage", "sage_varlen", "sage_hub",
    "sage_blackwell_hub", "_sage_qk_int8_pv_fp8_cuda", "_sage_qk_int8_pv_fp8_cuda_sm90",
    "_sage_qk_int8_pv_fp16_cuda", "_sage_qk_int8_pv_fp16_triton", "xformers",
)  # fmt: skip


class EditorConfig(_Strict):
    name: Literal["qwen", "identity"] = "qwen"
    delay_seconds: float = Field(0.0, ge=0)
    model: str = "Qwen/Qwen-Image-Edit-2509"
    revision: str | None = None
    pipeline: Literal["edit", "edit-plus"] = "edit-plus"
    # One slot (a process with the editor loaded) per entry: `[cuda:0, cuda:1]`; the identity
    # editor honours the list too (`[cpu, cpu, cpu]` gives three slots).
    device: str | list[str] = "cuda"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    offload: Literal["none", "model", "sequential"] = "none"
    # qwen: the model generates at most this many pixels, at the input's aspect ratio (sides in
    # multiples of 16); unset: the pipeline's own ~1024x1024. Smaller is faster and needs less
    # memory (the tests run the tiny pipeline this way); the worker resizes the result back.
    max_pixels: int | None = Field(None, ge=32 * 32)
    # qwen, speed (docs/gpu.md says which to use on which GPU): regional torch.compile of the
    # transformer's repeated blocks; a diffusers attention backend (null: its default);
    # torchao weights (fp8 needs compute capability 8.9+); VAE tiling (auto: large outputs);
    # one edit of the default preset at start (null: when compile is on).
    compile: bool = False
    attention_backend: str | None = None
    quantize: Literal["none", "fp8", "int8"] = "none"
    vae_tiling: Literal["auto", "on", "off"] = "auto"
    warmup: bool | None = None

    @field_validator("vae_tiling", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `on` / `off` as true / false.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @field_validator("attention_backend")
    @classmethod
    def _attention_backend(cls, value: str | None) -> str | None:
        if value is not None and value not in ATTENTION_BACKENDS:
            raise ValueError(
                f"{value!r} is not a diffusers attention backend; use null (the default) or one "
                f"of: {', '.join(ATTENTION_BACKENDS)}"
            )
        return value

    @property
    def warms_up(self) -> bool:
        """Whether a slot edits once with the default preset before it takes jobs."""
        return self.compile if self.warmup is None else self.warmup

    @model_validator(mode="before")
    @classmethod
    def _identity_on_cpu(cls, data: Any) -> Any:
        # The identity editor needs no GPU: unless a device list is given, it says "cpu".
        if isinstance(data, dict) and data.get("name") == "identity" and "device" not in data:
            return {**data, "device": "cpu"}
        return data

    @field_validator("device")
    @classmethod
    def _devices(cls, value: str | list[str]) -> str | list[str]:
        listed = [value] if isinstance(value, str) else value
        if not listed:
            raise ValueError("give at least one device, e.g. cuda or [cuda:0, cuda:1]")
        for device in listed:
            if not DEVICE_PATTERN.fullmatch(device):
                raise ValueError(f"{device!r} is not a device; use cpu, cuda or cuda:N")
        return value

    @property
    def devices(self) -> list[str]:
        """One entry per slot."""
        return [self.device] if isinstance(self.device, str) else list(self.device)

    def on(self, device: str) -> EditorConfig:
        """This configuration for one slot's device."""
        return self.model_copy(update={"device": device})


ADDRESS_PATTERN = re.compile(r"(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})")


class RayConfig(_Strict):
    """`executor: ray`: the workers are Ray actors, here or on other machines."""

    # null: start a private Ray on this machine; auto: the cluster `ray start` runs on this
    # machine; HOST:PORT: the head of a running cluster (its GCS port, 6379 by default).
    address: str | None = None
    workers: int = Field(1, ge=1)  # actors; each loads the editor once and keeps it
    num_gpus_per_worker: float = Field(1.0, ge=0)  # 0 on CPU-only clusters
    num_cpus_per_worker: float = Field(1.0, ge=0)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "auto":
            return value
        match = ADDRESS_PATTERN.fullmatch(value)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise ValueError(
                "use null (a private Ray on this machine), auto (the cluster running here) "
                "or HOST:PORT of a running cluster's head, e.g. 10.0.0.5:6379"
            )
        return value

    @property
    def device(self) -> str:
        """What an actor edits on: the GPU Ray gives it, or the CPU."""
        return "cuda" if self.num_gpus_per_worker > 0 else "cpu"


class MetricsConfig(_Strict):
    """Prometheus metrics: a textfile for node_exporter, an HTTP /metrics endpoint, or both."""

    # Rewritten atomically at most once a second and with every heartbeat; relative to the root.
    textfile: Path | None = None
    port: int | None = Field(None, ge=1, le=65535)
    host: str = Field("127.0.0.1", min_length=1)

    @field_validator("textfile")
    @classmethod
    def _prom_suffix(cls, value: Path | None) -> Path | None:
        # node_exporter's textfile collector reads only *.prom files.
        if value is not None and value.suffix != ".prom":
            raise ValueError(f"{value} must end in .prom (node_exporter reads only those)")
        return value


class Config(_Strict):
    root: Path = Path()
    max_pending: int = Field(10, ge=1)
    settle_seconds: float = Field(2.0, ge=0)
    sidecar_wait_seconds: float = Field(30.0, ge=0)
    status_retention_seconds: float = Field(3600.0, ge=0)
    max_attempts: int = Field(2, ge=1)
    keep_inputs: bool = True
    observer: Literal["auto", "native", "polling"] = "auto"
    poll_interval_seconds: float = Field(1.0, gt=0)
    # A full rescan of inbox/ catches events lost to overflow, dead observers or dropped shares.
    rescan_interval_seconds: float = Field(30.0, gt=0)
    # A truncated image that never completes is rejected this long after it settled.
    incomplete_image_seconds: float = Field(60.0, ge=0)
    # A file some process still has open for writing is not settled until it has stood still
    # this long (a writer idle with the file open, or a close event lost), then it is taken.
    writer_wait_seconds: float = Field(600.0, ge=0)
    # Below this much free space on the root's (or outbox's) filesystem, no new job is admitted.
    min_free_bytes: int = Field(100_000_000, ge=0)
    limits: Limits = Limits()
    notify: NotifyConfig = NotifyConfig()
    per_station: PerStation = PerStation()
    # fifo: first in, first out over all stations; fair: stations take turns (round-robin).
    dispatch: Literal["fifo", "fair"] = "fifo"
    # Past max_pending (or per_station.max_pending): reject sends a drop to failed/ as
    # queue_full; hold leaves it waiting in inbox/, admitted in drop order as room frees.
    overflow: Literal["reject", "hold"] = "reject"
    default_preset: str = "qwen-4step"
    editor: EditorConfig = EditorConfig()
    # local: a worker per editor.device entry on this machine; ray: ray.workers Ray actors.
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()
    presets: dict[str, Preset] = Field(default_factory=lambda: dict(BUILTIN_PRESETS))
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def _check(self) -> Config:
        for name in self.presets:
            if not name or "/" in name or name.strip() != name:
                raise ValueError(f"preset name {name!r} must be a plain word like qwen-4step")
        if self.default_preset not in self.presets:
            known = ", ".join(sorted(self.presets))
            raise ValueError(
                f"default_preset {self.default_preset!r} is not a configured preset; use one of: {known}"
            )
        if self.executor == "ray":
            self._check_ray()
        elif self.editor.offload != "none" and not all(
            device.startswith("cuda") for device in self.editor.devices
        ):
            raise ValueError(
                f"editor.offload {self.editor.offload!r} needs a CUDA device; "
                "set editor.offload: none for editor.device: cpu"
            )
        if self.editor.quantize == "fp8" and not all(
            device.startswith("cuda") for device in self.editor.devices
        ):
            raise ValueError(
                "editor.quantize 'fp8' needs a CUDA GPU with compute capability 8.9 or newer "
                "(L4, L40S, RTX 4090, H100, H200); use editor.quantize: int8 or none on the CPU"
            )
        return self

    def _check_ray(self) -> None:
        if len(self.editor.devices) > 1:
            raise ValueError(
                "editor.device lists several devices, which is for executor: local; "
                "with executor: ray set ray.workers (and ray.num_gpus_per_worker) instead"
            )
        if self.editor.offload != "none" and self.ray.device != "cuda":
            raise ValueError(
                f"editor.offload {self.editor.offload!r} needs a GPU; with executor: ray "
                "set ray.num_gpus_per_worker above 0 or editor.offload: none"
            )

    @property
    def root_path(self) -> Path:
        return self.root.resolve()

    @property
    def metrics_textfile(self) -> Path | None:
        """metrics.textfile, a relative path taken from the root."""
        textfile = self.metrics.textfile
        return None if textfile is None else self.root_path / textfile

    def preset(self, name: str | None) -> Preset:
        return self.presets[name or self.default_preset]


def _read_yaml_file(path: Path) -> dict[str, Any]:
    try:
        text = decode(path.read_bytes()).removeprefix("\ufeff")
    except FileNotFoundError as e:
        raise ConfigError(
            f"config file {path} does not exist; pass --config with a real file"
        ) from e
    except IsADirectoryError as e:
        raise ConfigError(f"config file {path} is a folder; pass --config with a file") from e
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or e}") from e
    except ValueError as e:
        raise ConfigError(f"config file {path}: {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(f"config file {path}: {explain(e, text)}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}; fix the syntax") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of keys, not {type(data).__name__}"
        )
    return data


def config_file(path: Path | None, root: Path | None) -> Path | None:
    """The file `load_config` reads: `path`, else `<root or cwd>/config/hotfolder.yaml` if it
    exists, else None (built-in defaults)."""
    if path is not None:
        return path
    candidate = (root or Path()) / DEFAULT_CONFIG_PATH
    return candidate if candidate.is_file() else None


def load_config(
    path: Path | None = None,
    *,
    root: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Read the config file (if any), apply command-line overrides, validate once.

    Without `path`, `<root or cwd>/config/hotfolder.yaml` is used when it exists.
    Overrides use dotted keys (`editor.name`); command-line flags win over the file.
    """
    data: dict[str, Any] = {}
    source = "built-in defaults"
    path = config_file(path, root)
    if path is not None:
        data = _read_yaml_file(path)
        source = str(path)
        # A relative root in a file means relative to the working directory, as on the CLI.
    presets = data.get("presets")
    if isinstance(presets, dict):
        data["presets"] = {**BUILTIN_PRESETS, **presets}
    if root is not None:
        data["root"] = root
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[leaf] = value
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        problem = describe_validation_error(e, "config key", model=Config)
        raise ConfigError(f"{source}: {problem}") from e
    for name, preset in config.presets.items():
        if not math.isfinite(preset.true_cfg_scale):
            raise ConfigError(f"{source}: presets.{name}.true_cfg_scale must be a finite number")
    return config


def dump_config(config: Config) -> str:
    """The effective configuration as YAML, for `hotfolder check`."""
    data = config.model_dump(mode="json")
    data["root"] = str(config.root_path)
    return yaml.safe_dump(data, sort_keys=False)
