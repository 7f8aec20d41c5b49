"""Qwen-Image-Edit pipelines with random weights: tiny for tests and `hotfolder selftest`,
full size for benchmarks/gpu.py.

Same classes and on-disk layout as the real checkpoint, so a saved one loads through the very
`from_pretrained` that production uses. Tiny is a few MB and seconds on a CPU; full size is
the published architecture (about 29 B parameters), as slow as the real model, since speed
does not depend on the weights' values. Nothing is downloaded: every component, the
tokenizer included, is built here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from hotfolder.editors.qwen import PIPELINE_CLASSES, has_torchvision, image_only_processor_class
from hotfolder.errors import HotfolderError

# The Qwen2-VL special tokens the pipelines' prompt templates and the processor use.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# A few byte-level BPE merges, so the tokenizer is a real (if poor) BPE and not just bytes.
_MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("Ġ", "a"), ("o", "n"))

_Z_DIM = 4  # latent channels of the tiny VAE; the transformer packs 2x2 patches of them
_TEXT_HIDDEN = 16

# Each architecture: the transformer, the VAE, and the Qwen2.5-VL text encoder's text and
# vision halves. Full size is Qwen-Image-Edit(-2509) as published: the transformer is
# diffusers' QwenImageTransformer2DModel defaults (60 blocks, 24 heads x 128, joint dim
# 3584), the VAE is diffusers' AutoencoderKLQwenImage defaults (the Qwen-Image VAE), and the
# text encoder is Qwen2.5-VL-7B-Instruct (its config.json: 28 layers of 3584, 28 heads, 4 KV
# heads, MLP 18944, vocabulary 152064, mrope sections 16/24/24; a 32-block 1280-wide ViT).
ARCHITECTURES: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "tiny": {
        "transformer": {
            "patch_size": 2,
            "in_channels": _Z_DIM * 4,
            "out_channels": _Z_DIM,
            "num_layers": 2,
            "attention_head_dim": 16,
            "num_attention_heads": 3,
            "joint_attention_dim": _TEXT_HIDDEN,
            "guidance_embeds": False,
            "axes_dims_rope": (8, 4, 4),
        },
        # Three downsampling stages, as in the real VAE: 8x smaller latents keep the
        # transformer's sequence short even though the pipelines resize inputs to ~1 megapixel.
        "vae": {
            "base_dim": 8,
            "z_dim": _Z_DIM,
            "dim_mult": [1, 1, 2, 2],
            "num_res_blocks": 1,
            "temperal_downsample": [False, True, True],
            "latents_mean": [0.0] * _Z_DIM,
            "latents_std": [1.0] * _Z_DIM,
        },
        "text": {
            "hidden_size": _TEXT_HIDDEN,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
        },
        "vision": {
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": _TEXT_HIDDEN,
        },
    },
    "full": {
        "transformer": {
            "patch_size": 2,
            "in_channels": 64,
            "out_channels": 16,
            "num_layers": 60,
            "attention_head_dim": 128,
            "num_attention_heads": 24,
            "joint_attention_dim": 3584,
            "guidance_embeds": False,
            "axes_dims_rope": (16, 56, 56),
        },
        "vae": {
            "base_dim": 96,
            "z_dim": 16,
            "dim_mult": [1, 2, 4, 4],
            "num_res_blocks": 2,
            "attn_scales": [],
            "temperal_downsample": [False, True, True],
        },
        "text": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-06,
            "rope_scaling": {
                "mrope_section": [16, 24, 24],
                "rope_type": "default",
                "type": "default",
            },
            "rope_theta": 1000000.0,
            "vocab_size": 152064,
        },
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
        },
    },
}

# The linear layers of each transformer block a Lightning-style LoRA adapts: attention and
# MLPs of both streams. At rank 64 on the full transformer that is 425 M parameters, 850 MB
# in bf16: the size of the published Lightning LoRA files.
LORA_TARGETS: Final = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "img_mlp.net.0.proj",
    "img_mlp.net.2",
    "txt_mlp.net.0.proj",
    "txt_mlp.net.2",
)


class TinyBuildError(HotfolderError):
    """The tiny pipeline could not be built (a missing or incompatible library)."""


def _tokenizer() -> Any:
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {token: i for i, token in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for left, right in _MERGES:
        vocab.setdefault(left + right, len(vocab))
    # The tokenizers library wants (left, right) pairs; transformers' annotation says strings.
    merges: Any = list(_MERGES)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    # The real checkpoint lists these as additional special tokens; `<|endoftext|>` is
    # already there as eos/pad, re-adding it keeps its id.
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    return tokenizer


def _processor(tokenizer: Any) -> Any:
    if has_torchvision():
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

        return Qwen2VLProcessor(
            image_processor=Qwen2VLImageProcessor(),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(),
        )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    return image_only_processor_class()(
        image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer
    )


def _text_encoder(tokenizer: Any, text: dict[str, Any], vision: dict[str, Any]) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            **text,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(config)


@contextmanager
def _building_on(torch: Any, device: str | None, dtype: Any) -> Iterator[None]:
    """Create parameters on `device` in `dtype` from the start: a full-size pipeline built
    in float32 on the CPU first would need 116 GB and minutes."""
    previous = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        if device is None:
            yield
        else:
            with torch.device(device):
                yield
    finally:
        torch.set_default_dtype(previous)


def make_pipeline(
    size: str = "tiny",
    *,
    pipeline: str = "edit-plus",
    seed: int = 0,
    device: str | None = None,
    dtype: str | None = None,
) -> Any:
    """A random Qwen-Image-Edit pipeline of `size` (`tiny` or `full`), in memory.

    `device` and `dtype` (`bfloat16`, ...): where and in what the weights are made (default:
    the CPU, float32). `pipeline` is `edit` or `edit-plus`, as in `editor.pipeline`.
    """
    if pipeline not in PIPELINE_CLASSES:
        raise ValueError(f"pipeline {pipeline!r} is not one of {', '.join(PIPELINE_CLASSES)}")
    if size not in ARCHITECTURES:
        raise ValueError(f"size {size!r} is not one of {', '.join(ARCHITECTURES)}")
    try:
        import diffusers
        import torch
    except ImportError as e:
        raise TinyBuildError(f"building the pipeline needs torch and diffusers: {e}") from e

    parts = ARCHITECTURES[size]
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    with _building_on(torch, device, getattr(torch, dtype) if dtype else None):
        transformer = diffusers.QwenImageTransformer2DModel(**parts["transformer"])
        vae = diffusers.AutoencoderKLQwenImage(**parts["vae"])
        text_encoder = _text_encoder(tokenizer, parts["text"], parts["vision"])
    pipeline_class = getattr(diffusers, PIPELINE_CLASSES[pipeline])
    return pipeline_class(
        transformer=transformer,
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=_processor(tokenizer),
    )


def build_tiny_pipeline(folder: Path, *, pipeline: str = "edit-plus", seed: int = 0) -> Path:
    """Build a tiny random Qwen-Image-Edit pipeline (seeded) and save it to `folder`.

    `pipeline` is `edit` or `edit-plus`, as in `editor.pipeline`. The result loads with
    `from_pretrained(folder)` like the real checkpoint; returns `folder`.
    """
    pipe = make_pipeline("tiny", pipeline=pipeline, seed=seed)
    # Record the processor as the real checkpoint does, whatever class stood in for it here.
    pipe.register_to_config(processor=("transformers", "Qwen2VLProcessor"))
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)
    return folder


def make_tiny_lora(pipeline_folder: Path, out_file: Path, seed: int = 0) -> Path:
    """Make a random LoRA for the tiny transformer in `pipeline_folder`; save it as `out_file`.

    The weights are non-zero, so the LoRA visibly changes the output. Returns `out_file`.
    """
    import diffusers
    import torch
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = diffusers.QwenImageTransformer2DModel.from_pretrained(
        pipeline_folder, subfolder="transformer"
    )
    transformer.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            init_lora_weights=False,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    state = get_peft_model_state_dict(transformer)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    diffusers.QwenImageEditPlusPipeline.save_lora_weights(
        out_file.parent,
        transformer_lora_layers=state,
        weight_name=out_file.name,
    )
    return out_file


def make_random_lora(
    transformer: Any, out_file: Path, *, rank: int = 64, seed: int = 0, dtype: str = "bfloat16"
) -> Path:
    """A random LoRA of `rank` on LORA_TARGETS of every block of `transformer` (any size),
    saved as `out_file` in diffusers' format. Made on the CPU; the transformer is not changed."""
    import diffusers
    import torch

    generator = torch.Generator().manual_seed(seed)
    weight_dtype = getattr(torch, dtype)
    state: dict[str, Any] = {}
    for index, block in enumerate(transformer.transformer_blocks):
        for target in LORA_TARGETS:
            layer = block.get_submodule(target)
            prefix = f"transformer_blocks.{index}.{target}"
            # Small values, as a trained LoRA's: the edit stays a perturbation of the base.
            down = torch.randn(rank, layer.in_features, generator=generator) / layer.in_features
            up = torch.randn(layer.out_features, rank, generator=generator) / rank
            state[f"{prefix}.lora_A.weight"] = down.to(weight_dtype)
            state[f"{prefix}.lora_B.weight"] = up.to(weight_dtype)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    diffusers.QwenImageEditPlusPipeline.save_lora_weights(
        out_file.parent, transformer_lora_layers=state, weight_name=out_file.name
    )
    return out_file
