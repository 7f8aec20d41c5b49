"""A tiny Qwen-Image-Edit pipeline with random weights, for tests and `hotfolder selftest`.

Same classes and on-disk layout as the real checkpoint, so it loads through the very
`from_pretrained` that production uses; only the sizes are small (a few MB, seconds on a
CPU). Nothing is downloaded: every component, the tokenizer included, is built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _text_encoder(tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": _TEXT_HIDDEN,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": len(tokenizer),
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": _TEXT_HIDDEN,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(config)


def build_tiny_pipeline(folder: Path, *, pipeline: str = "edit-plus", seed: int = 0) -> Path:
    """Build a tiny random Qwen-Image-Edit pipeline (seeded) and save it to `folder`.

    `pipeline` is `edit` or `edit-plus`, as in `editor.pipeline`. The result loads with
    `from_pretrained(folder)` like the real checkpoint; returns `folder`.
    """
    if pipeline not in PIPELINE_CLASSES:
        raise ValueError(f"pipeline {pipeline!r} is not one of {', '.join(PIPELINE_CLASSES)}")
    try:
        import diffusers
        import torch
    except ImportError as e:
        raise TinyBuildError(f"building the tiny pipeline needs torch and diffusers: {e}") from e

    torch.manual_seed(seed)
    transformer = diffusers.QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=_Z_DIM * 4,
        out_channels=_Z_DIM,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=_TEXT_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    # Three downsampling stages, as in the real VAE: 8x smaller latents keep the
    # transformer's sequence short even though the pipelines resize inputs to ~1 megapixel.
    vae = diffusers.AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=_Z_DIM,
        dim_mult=[1, 1, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * _Z_DIM,
        latents_std=[1.0] * _Z_DIM,
    )
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler()
    tokenizer = _tokenizer()
    text_encoder = _text_encoder(tokenizer)
    pipeline_class = getattr(diffusers, PIPELINE_CLASSES[pipeline])
    pipe = pipeline_class(
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=_processor(tokenizer),
    )
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
