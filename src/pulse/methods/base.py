"""The method interface and the shared pieces of their losses."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from pulse.models.encoding import answer_logits, token_logprobs

METHODS: dict[str, type["Method"]] = {}


def register(name: str):
    def wrap(cls):
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


class Method:
    """``loss(model, forget, retain)`` -> (scalar, logs). ``model`` is a peft model whose
    adapter is the step being trained; with the adapter disabled it is the starting model of
    this request, which methods with ``needs_reference`` use as their reference."""

    name = "method"
    needs_reference = False
    uses_retain = False

    def __init__(self, **hyperparameters):
        unknown = set(hyperparameters) - set(self.defaults())
        if unknown:
            raise KeyError(f"{type(self).__name__}: unknown hyper-parameter(s) {sorted(unknown)}")
        self.hp = {**self.defaults(), **hyperparameters}

    @classmethod
    def defaults(cls) -> dict:
        return {}

    def loss(self, model, forget: dict, retain: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


def reference(model):
    """Context in which ``model`` computes the reference (starting) model, without gradients."""
    disable = getattr(model, "disable_adapter", None)
    return disable() if disable is not None else nullcontext()


def nll(model, batch: dict) -> torch.Tensor:
    """Mean per-token negative log-likelihood of the answers in ``batch``."""
    logprobs, mask = token_logprobs(model, batch)
    return -logprobs.sum() / mask.sum()


def sequence_logprob(model, batch: dict) -> torch.Tensor:
    """Summed log-probability of each answer, shape (B,)."""
    logprobs, _ = token_logprobs(model, batch)
    return logprobs.sum(dim=1)


def kl_to_reference(model, batch: dict) -> torch.Tensor:
    """Mean per-token KL(reference || model) on the answer positions of ``batch``."""
    with torch.no_grad(), reference(model):
        ref_logits, mask = answer_logits(model, batch)
    logits, _ = answer_logits(model, batch)
    ref_logp = torch.log_softmax(ref_logits, dim=-1)
    logp = torch.log_softmax(logits, dim=-1)
    per_token = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (per_token * mask).sum() / mask.sum()
