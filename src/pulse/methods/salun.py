"""SalUn (Fan et al. 2024, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency"): RandLabel restricted to the salient weights of the forget loss.

Before training, one pass over the request's forget examples accumulates g = grad NLL(forget) on
the trainable (LoRA) weights; the top ``saliency`` fraction of entries by |g| is the mask, and
every later gradient is multiplied by it, so only salient entries move:
L = NLL(forget -> wrong answers) + retain_weight * NLL(retain),  updates masked to salient entries.

On a fresh LoRA adapter (B = 0) the gradients of the A matrices are exactly zero, so saliency is
decided among the entries of the B matrices (the A matrices stay trainable; they only act through
the salient B entries).
"""

import math

import torch

from pulse.methods.base import nll, register
from pulse.methods.randlabel import RandomLabel


@register("SalUn")
class SaliencyUnlearning(RandomLabel):
    @classmethod
    def defaults(cls):
        return {**RandomLabel.defaults(), "saliency": 0.5}

    def prepare(self, model, forget_batches):
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        saliency = {name: torch.zeros_like(p) for name, p in params.items()}
        for batch in forget_batches:
            model.zero_grad(set_to_none=True)
            nll(model, batch).backward()
            for name, p in params.items():
                if p.grad is not None:
                    saliency[name] += p.grad.detach().abs()
        model.zero_grad(set_to_none=True)
        scored = {name: s for name, s in saliency.items() if s.any()}
        if not scored:
            raise ValueError("SalUn: the forget loss has no gradient on any trainable weight")
        flat = torch.cat([s.flatten() for s in scored.values()])
        keep = max(1, math.ceil(self.hp["saliency"] * flat.numel()))
        threshold = torch.topk(flat, keep).values.min()
        salient = 0
        for name, score in scored.items():
            mask = (score >= threshold).to(params[name].dtype)
            salient += int(mask.sum())
            params[name].register_hook(lambda grad, mask=mask: grad * mask)
        return {"salient_fraction": salient / flat.numel()}
