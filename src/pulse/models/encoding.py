"""Turn QA/MCQ examples into token ids and pixel values, and pad them into batches.

Prompt and answer are tokenised separately and concatenated, so the loss mask is exact for any
tokenizer; images go through the model's own processor (which expands the image token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PROMPTS = {
    "tiny": {"mm": "<image> Question : {question} Answer :", "text": "Question : {question} Answer :"},
    "llava": {"mm": "USER: <image>\n{question} ASSISTANT:", "text": "USER: {question} ASSISTANT:"},
}


@dataclass
class Encoded:
    """One sequence: ids, the index where the answer starts, and the image tensor (or None)."""
    input_ids: list[int]
    answer_start: int
    pixel_values: torch.Tensor | None


class Encoder:
    def __init__(self, processor, prompts: dict[str, str]):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.prompts = prompts
        self._pixels: dict[int, tuple[object, torch.Tensor]] = {}
        self._prompt_ids: dict[tuple, list[int]] = {}

    def pixels(self, image) -> torch.Tensor:
        # Keyed by object identity; the image is kept alive with its tensor, so that a freed
        # image's id, reused by a new image, can never return stale pixels.
        key = id(image)
        if key not in self._pixels:
            self._pixels[key] = (image, self.processor.image_processor(
                images=[image], return_tensors="pt")["pixel_values"][0])
        return self._pixels[key][1]

    def prompt_ids(self, question: str, image) -> list[int]:
        modality = "text" if image is None else "mm"
        key = (question, modality)
        if key not in self._prompt_ids:
            text = self.prompts[modality].format(question=question)
            if image is None:
                ids = self.tokenizer(text)["input_ids"]
            else:
                # The processor needs an image to expand the image token; the ids do not depend on it.
                ids = self.processor(text=[text], images=[image])["input_ids"][0]
            self._prompt_ids[key] = list(ids)
        return self._prompt_ids[key]

    def answer_ids(self, answer: str) -> list[int]:
        return list(self.tokenizer(" " + answer, add_special_tokens=False)["input_ids"]) + [
            self.tokenizer.eos_token_id]

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
    images = [item.pixel_values for item in items if item.pixel_values is not None]
    if images:
        batch["pixel_values"] = torch.stack(images)
    return batch


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
