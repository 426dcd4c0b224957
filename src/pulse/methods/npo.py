"""Negative preference optimisation (NPO, Zhang et al. 2024) with the starting model as reference.

L = -(2 / beta) * mean log sigmoid(-beta * (log p_theta(y|x) - log p_ref(y|x)))   on forget
    + retain_weight * NLL(retain)        (retain_weight 0 = plain NPO)
Sequence log-probabilities sum the answer tokens.
"""

import torch
import torch.nn.functional as F

from pulse.methods.base import Method, reference, register, sequence_logprob


@register("NPO")
class NegativePreference(Method):
    needs_reference = True

    @classmethod
    def defaults(cls):
        return {"beta": 0.1, "retain_weight": 0.0}

    def loss(self, model, forget, retain):
        with torch.no_grad(), reference(model):
            ref_logp = sequence_logprob(model, forget)
        logp = sequence_logprob(model, forget)
        beta = self.hp["beta"]
        loss = -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()
        logs = {"forget_logratio": (logp - ref_logp).mean().detach()}
        return self.plus_retain_nll(model, retain, loss, logs)
