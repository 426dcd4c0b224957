"""Turn QA/MCQ examples into token ids and pixel values, and pad them into batches.

Prompt and answer are tokenised separately and concatenated, so the loss mask is exact for any
tokenizer; images go through the model's own processor (which expands the image token).

Each back-end has its prompt template (``PROMPTS``): the image+text and text-only prompts, and
``answer_prefix``, what separates the prompt from the answer in that chat format (a space after
LLaVA's "ASSISTANT:", nothing after Qwen's "assistant\n" line). Answers and MCQ options are
tokenised as a continuation of the prompt (``Encoder.continuation_ids``), so SentencePiece
tokenizers do not get a stray word-boundary token in front of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

QWEN_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
QWEN_PROMPTS = {
    "mm": QWEN_SYSTEM + "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
                        "<|im_start|>assistant\n",
    "text": QWEN_SYSTEM + "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n",
    "answer_prefix": "",
}
PROMPTS = {
    "tiny": {"mm": "<image> Question : {question} Answer :", "text": "Question : {question} Answer :"},
    # LLaVA-1.5 (llava-hf) conversation format: "USER: <image>\n... ASSISTANT:".
    "llava": {"mm": "USER: <image>\n{question} ASSISTANT:", "text": "USER: {question} ASSISTANT:"},
    # Qwen2-VL / Qwen2.5-VL chat format (ChatML with the default system message).
    "qwen2_vl": QWEN_PROMPTS,
    "qwen2_5_vl": QWEN_PROMPTS,
}


@dataclass
class PatchImage:
    """An image as a patch sequence (Qwen2-VL family): its patches, its (t, h, w) patch grid and
    the id of the image token whose positions the model marks in ``mm_token_type_ids``."""
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    image_token_id: int


@dataclass
class Encoded:
    """One sequence: ids, the index where the answer starts, and the image tensor (or None)."""
    input_ids: list[int]
    answer_start: int
    pixel_values: torch.Tensor | PatchImage | None


class Encoder:
    def __init__(self, processor, prompts: dict[str, str]):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.prompts = prompts
        self.answer_prefix = prompts.get("answer_prefix", " ")
        # What precedes an answer: the end of the prompt template (used to tokenise continuations).
        self._anchor = prompts["text"].rsplit("{question}", 1)[1]
        self._pixels: dict[int, tuple[object, torch.Tensor | PatchImage]] = {}
        self._prompt_ids: dict[tuple, list[int]] = {}
        self._continuations: dict[str, list[int]] = {}
        # Patch-sequence images with multimodal rotary positions (Qwen2-VL family): the model must
        # compute the position ids itself, so position-id shortcuts (cached prompts) do not apply.
        self.patch_images = bool(getattr(processor, "patch_images", False))

    def pixels(self, image) -> torch.Tensor | PatchImage:
        # Keyed by object identity; the image is kept alive with its tensor, so that a freed
        # image's id, reused by a new image, can never return stale pixels.
        key = id(image)
        if key not in self._pixels:
            out = self.processor.image_processor(images=[image], return_tensors="pt")
            if "image_grid_thw" in out:  # one image = all patch rows + its grid
                pixels = PatchImage(out["pixel_values"], out["image_grid_thw"], self.processor.image_token_id)
            else:
                pixels = out["pixel_values"][0]
            self._pixels[key] = (image, pixels)
        return self._pixels[key][1]

    def prompt_ids(self, question: str, image) -> list[int]:
        modality = "text" if image is None else "mm"
        # The expanded image-token count depends on the image size for some back-ends (Qwen2-VL).
        key = (question, modality, None if image is None else image.size)
        if key not in self._prompt_ids:
            text = self.prompts[modality].format(question=question)
            if image is None:
                ids = self.tokenizer(text)["input_ids"]
            else:
                # The processor needs an image to expand the image token (to as many tokens as
                # the vision tower gives features); the ids do not depend on its pixels.
                ids = self.processor(text=[text], images=[image])["input_ids"][0]
            self._prompt_ids[key] = [int(i) for i in ids]
        return self._prompt_ids[key]

    def continuation_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` as it continues the prompt (answer prefix included, no EOS)."""
        if text not in self._continuations:
            tokenize = lambda t: list(self.tokenizer(t, add_special_tokens=False)["input_ids"])  # noqa: E731
            head = tokenize(self._anchor)
            full = tokenize(self._anchor + self.answer_prefix + text)
            if head and full[:len(head)] == head:
                ids = full[len(head):]
            else:  # the tokenizer merged across the boundary: tokenise the continuation alone
                ids = tokenize(self.answer_prefix + text)
            self._continuations[text] = ids
        return self._continuations[text]

    def answer_ids(self, answer: str) -> list[int]:
        return self.continuation_ids(answer) + [self.tokenizer.eos_token_id]

    def encode(self, question: str, answer: str, image) -> Encoded:
        prompt = self.prompt_ids(question, image)
        return Encoded(prompt + self.answer_ids(answer), len(prompt),
                       None if image is None else self.pixels(image))

    def encode_qa(self, qa) -> Encoded:
        return self.encode(qa.question, qa.answer, qa.image)


def collate(items: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with labels masked to the answer tokens (-100 elsewhere)."""
    width = max(len(item.input_ids) for item in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        input_ids[row, :n] = torch.tensor(item.input_ids)
        attention[row, :n] = 1
        labels[row, item.answer_start:n] = input_ids[row, item.answer_start:n]
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    batch.update(image_inputs([item.pixel_values for item in items if item.pixel_values is not None], input_ids))
    return batch


def image_inputs(images: list, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model inputs of a batch's images (in the order of their image tokens in ``input_ids``)."""
    if not images:
        return {}
    if isinstance(images[0], PatchImage):
        # Patch-sequence images (Qwen2-VL family): patches concatenated, one grid row per image,
        # and the image-token positions marked for the multimodal rotary positions.
        return {"pixel_values": torch.cat([image.pixel_values for image in images]),
                "image_grid_thw": torch.cat([image.image_grid_thw for image in images]),
                "mm_token_type_ids": (input_ids == images[0].image_token_id).long()}
    return {"pixel_values": torch.stack(images)}


def token_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the labels and the mask of answer tokens, shapes (B, T-1)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    gathered = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return gathered * mask, mask


def answer_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the answer positions (B, T-1, V) and their mask, for distribution-matching losses."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    return logits, batch["labels"][:, 1:] != -100
