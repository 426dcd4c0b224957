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
