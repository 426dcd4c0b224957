"""The one training loop: seeded batches, AdamW with warm-up, a loss callback per step."""

from __future__ import annotations

import random
import time
from typing import Callable, Iterator

import numpy as np
import torch

from pulse.models.encoding import collate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(items: list, batch_size: int, pad_id: int, seed: int,
            collate_fn: Callable[[list, int], dict] = collate) -> Iterator[dict]:
    """Endless epochs over ``items`` in a seeded shuffled order (batch capped at the data size)."""
    if not items:
        raise ValueError("no training examples")
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(items))
    while True:
        order = rng.permutation(len(items))
        for start in range(0, len(order) - size + 1, size):
            yield collate_fn([items[i] for i in order[start:start + size]], pad_id)


def mixed(*streams: Iterator[dict]) -> Iterator[list[dict]]:
    """Zip several batch streams; one step sees one batch of each."""
    while True:
        yield [next(stream) for stream in streams]


def fit(model: torch.nn.Module, step_loss: Callable[[], tuple[torch.Tensor, dict]], steps: int,
        lr: float, warmup: int = 0, weight_decay: float = 0.0, log: Callable[[str], None] = print,
        log_every: int = 10) -> list[dict]:
    """Run ``steps`` optimiser steps of ``step_loss`` over the trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
    history = []
    model.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss, logs = step_loss()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        record = {"step": step, "loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}
        history.append(record)
        if step % log_every == 0 or step == steps:
            extras = " ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("step",))
            log(f"step {step}/{steps} {extras} ({time.perf_counter() - start:.1f}s)")
    model.eval()
    return history
