"""KL: drive the forget answers' next-token distribution to uniform (maximum entropy,
"ME" in Yuan et al. 2025, "A Closer Look at Machine Unlearning for LLMs") while holding the
retain distribution to the starting model:

L = KL(uniform || p_theta)(forget) + retain_weight * KL(p_start || p_theta)(retain)

Unlike GA (unbounded, pushes answers below chance, which itself reveals what was forgotten)
its forget term is bounded and is minimal when the model is as unsure as if it never learned.
A pure "-KL to the starting model" forget term would be stuck at its zero-gradient minimum.
"""

import torch

from pulse.methods.base import Method, kl_to_reference, register
from pulse.models.encoding import answer_logits


def kl_uniform(model, batch: dict) -> torch.Tensor:
    """Mean per-token KL(uniform || p_theta) on the answer positions of ``batch``."""
    logits, mask = answer_logits(model, batch)
    logp = torch.log_softmax(logits, dim=-1)
    vocab = logp.shape[-1]
    per_token = -logp.mean(dim=-1) - torch.log(torch.tensor(float(vocab)))
    return (per_token * mask).sum() / mask.sum()


@register("KL")
class KLUniform(Method):
    needs_reference = True
    uses_retain = True

    @classmethod
    def defaults(cls):
        return {"retain_weight": 1.0}

    def loss(self, model, forget, retain):
        forget_kl = kl_uniform(model, forget)
        retain_kl = kl_to_reference(model, retain)
        loss = forget_kl + self.hp["retain_weight"] * retain_kl
        return loss, {"forget_kl_uniform": forget_kl.detach(), "retain_kl": retain_kl.detach()}
