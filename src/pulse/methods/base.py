"""The method interface and the shared pieces of their losses."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from pulse.models.encoding import Encoded, answer_logits, collate, token_logprobs

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
    this request, which methods with ``needs_reference`` use as their reference.

    Optional, for methods that need more than (forget, retain) token batches:

    - ``alternatives``: names of alternative answers each forget example also carries
      (``"wrong"``: an answer of another entity to the same kind of question, ``"refusal"``: an
      "I don't know"-style answer); read them with ``alternative(forget, name)``.
    - ``prepare(model, forget_batches)``: called once before training with every forget batch of
      the request (e.g. a saliency pass, or an initialisation of the new adapter).
    - ``routed``: the adapter is a switchable expert applied only to inputs its router selects
      (see ``pulse.models.routing``), trained from the starting model of the whole chain.
    - ``objective(model, forget, retain)``: the value the method minimises, when ``loss`` is
      only one phase of it (default: the loss itself).
    """

    name = "method"
    needs_reference = False
    uses_retain = False
    alternatives: tuple[str, ...] = ()
    routed = False

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

    def prepare(self, model, forget_batches: list[dict]) -> dict:
        """Once before training; returns values to log (none by default)."""
        return {}

    def objective(self, model, forget: dict, retain: dict) -> torch.Tensor:
        return self.loss(model, forget, retain)[0]

    def plus_retain_nll(self, model, retain: dict, loss: torch.Tensor, logs: dict) -> tuple[torch.Tensor, dict]:
        """``loss + retain_weight * NLL(retain)`` (the common retain term; skipped at weight 0)."""
        if not self.hp["retain_weight"]:
            return loss, logs
        retain_nll = nll(model, retain)
        return loss + self.hp["retain_weight"] * retain_nll, {**logs, "retain_nll": retain_nll.detach()}


def collate_forget(items: list[tuple[Encoded, dict[str, Encoded]]], pad_id: int) -> dict:
    """A forget batch whose examples carry alternative answers: the usual batch keys for the true
    answers plus ``{name}/{key}`` for each alternative (same questions and images)."""
    batch = collate([main for main, _ in items], pad_id)
    for name in sorted(items[0][1]) if items else []:
        for key, value in collate([alts[name] for _, alts in items], pad_id).items():
            batch[f"{name}/{key}"] = value
    return batch


def alternative(batch: dict, name: str) -> dict:
    """The batch of the ``name`` alternative answers of a forget batch (see ``collate_forget``)."""
    prefix = f"{name}/"
    sub = {key[len(prefix):]: value for key, value in batch.items() if key.startswith(prefix)}
    if not sub:
        raise KeyError(f"the forget batch carries no {name!r} answers")
    return sub


def true_answers(batch: dict) -> dict:
    """The forget batch without its alternative answers."""
    return {key: value for key, value in batch.items() if "/" not in key}


def reference(model):
    """Context in which ``model`` computes the reference (starting) model, without gradients."""
    disable = getattr(model, "disable_adapter", None)
    return disable() if disable is not None else nullcontext()


def nll(model, batch: dict) -> torch.Tensor:
    """Mean per-token negative log-likelihood of the answers in ``batch``."""
    logprobs, mask = token_logprobs(model, true_answers(batch))
    return -logprobs.sum() / mask.sum()


def sequence_logprob(model, batch: dict) -> torch.Tensor:
    """Summed log-probability of each answer, shape (B,)."""
    logprobs, _ = token_logprobs(model, true_answers(batch))
    return logprobs.sum(dim=1)


def kl_to_reference(model, batch: dict) -> torch.Tensor:
    """Mean per-token KL(reference || model) on the answer positions of ``batch``."""
    batch = true_answers(batch)
    with torch.no_grad(), reference(model):
        ref_logits, mask = answer_logits(model, batch)
    logits, _ = answer_logits(model, batch)
    ref_logp = torch.log_softmax(ref_logits, dim=-1)
    logp = torch.log_softmax(logits, dim=-1)
    per_token = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (per_token * mask).sum() / mask.sum()
