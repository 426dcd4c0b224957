"""A tiny model of the real LLaVA class, with its tokenizer and processor, built offline.

The vision tower (CLIP), projector and language model (Llama) are the same classes as
LLaVA-1.5; only their sizes differ, so every code path that loads, adapts and scores this model is
the path a real checkpoint takes.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                          LlavaProcessor, PreTrainedTokenizerFast)
from transformers.models.clip import CLIPImageProcessorPil

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every word in ``texts`` (sorted, so the ids are deterministic)."""
    splitter = pre_tokenizers.Whitespace()
    words = sorted({w for text in texts for w, _ in splitter.pre_tokenize_str(text)})
    vocab = {token: i for i, token in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = splitter
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})


def build_processor(texts: list[str], sizes: dict, prompts: dict[str, str]) -> LlavaProcessor:
    """The processor of a tiny LLaVA whose vocabulary is every word of ``texts`` and ``prompts``."""
    image = sizes["image_size"]
    texts = list(texts) + [p.replace("{question}", "") for p in prompts.values()]
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    # The CLIP tower adds a CLS token that the "default" feature strategy drops again.
    return LlavaProcessor(image_processor=image_processor, tokenizer=word_tokenizer(texts),
                          patch_size=sizes["patch_size"], vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, image_token="<image>")


def build_model(tokenizer: PreTrainedTokenizerFast, sizes: dict) -> LlavaForConditionalGeneration:
    vision = CLIPVisionConfig(
        image_size=sizes["image_size"], patch_size=sizes["patch_size"],
        hidden_size=sizes["vision_hidden"], intermediate_size=4 * sizes["vision_hidden"],
        num_hidden_layers=sizes["vision_layers"], num_attention_heads=sizes["vision_heads"],
        projection_dim=sizes["vision_hidden"])
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=sizes["hidden"], intermediate_size=4 * sizes["hidden"],
        num_hidden_layers=sizes["layers"], num_attention_heads=sizes["heads"],
        num_key_value_heads=sizes["heads"], max_position_embeddings=sizes["max_positions"],
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    patches = (sizes["image_size"] // sizes["patch_size"]) ** 2
    config = LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=patches,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
        projector_hidden_act="gelu", tie_word_embeddings=False)
    return LlavaForConditionalGeneration(config)


# --- tiny models of the Qwen2-VL family (for tests of the real back-ends, random weights) -------

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>", "<unk>"]
QWEN_SIZES = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "vision_hidden": 32,
              "vision_layers": 1, "vision_heads": 2, "min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16,
              "max_positions": 512}


def qwen_word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with the special tokens of the Qwen2-VL chat format."""
    splitter = pre_tokenizers.Whitespace()
    words = sorted({w for text in texts for w, _ in splitter.pre_tokenize_str(text)})
    vocab = {token: i for i, token in enumerate(QWEN_SPECIALS + [w for w in words if w not in QWEN_SPECIALS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = splitter
    core.add_special_tokens(QWEN_SPECIALS)  # matched before word splitting, saved in tokenizer.json
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<|image_pad|>"})


def build_qwen_processor(texts: list[str], prompts: dict[str, str], sizes: dict | None = None):
    """Processor of a tiny Qwen2-VL-family model (the checkpoint layout: image processor + tokenizer)."""
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    from pulse.models.backends import QwenVLProcessor
    sizes = {**QWEN_SIZES, **(sizes or {})}
    texts = list(texts) + [p.replace("{question}", " ") for p in prompts.values()]
    image_processor = Qwen2VLImageProcessorPil(min_pixels=sizes["min_pixels"], max_pixels=sizes["max_pixels"],
                                               patch_size=14, merge_size=2, temporal_patch_size=2)
    return QwenVLProcessor(image_processor, qwen_word_tokenizer(texts))


def build_qwen_model(tokenizer, family: str = "qwen2_vl", sizes: dict | None = None):
    """A randomly initialised Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)
    sizes = {**QWEN_SIZES, **(sizes or {})}
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    head_dim = sizes["hidden"] // sizes["heads"]
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]  # temporal, height, width (sum = head_dim/2)
    text = {"vocab_size": len(tokenizer), "hidden_size": sizes["hidden"], "intermediate_size": 2 * sizes["hidden"],
            "num_hidden_layers": sizes["layers"], "num_attention_heads": sizes["heads"],
            "num_key_value_heads": sizes["kv_heads"], "max_position_embeddings": sizes["max_positions"],
            "rope_scaling": {"type": "mrope", "mrope_section": section}, "tie_word_embeddings": False,
            "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    common = {"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3,
              "depth": sizes["vision_layers"], "num_heads": sizes["vision_heads"]}
    if family == "qwen2_vl":
        vision = {**common, "embed_dim": sizes["vision_hidden"], "hidden_size": sizes["hidden"], "mlp_ratio": 2}
        config = Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
        return Qwen2VLForConditionalGeneration(config)
    vision = {**common, "hidden_size": sizes["vision_hidden"], "out_hidden_size": sizes["hidden"],
              "intermediate_size": 2 * sizes["vision_hidden"], "window_size": 56, "fullatt_block_indexes": [0]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    return Qwen2_5_VLForConditionalGeneration(config)
