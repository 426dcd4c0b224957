"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for
LLM Unlearning"): NPO without a reference model, on the length-normalised log-likelihood, plus
the retain NLL.

L = -(2 / beta) * mean log sigmoid(-(beta / |y|) * log p_theta(y|x) - gamma)   on forget
    + retain_weight * NLL(retain)
"""

import torch.nn.functional as F

from pulse.methods.base import Method, register, true_answers
from pulse.models.encoding import token_logprobs


@register("SimNPO")
class SimpleNegativePreference(Method):
    uses_retain = True

    @classmethod
    def defaults(cls):
        return {"beta": 2.5, "gamma": 0.0, "retain_weight": 1.0}

    def loss(self, model, forget, retain):
        logprobs, mask = token_logprobs(model, true_answers(forget))
        mean_logp = logprobs.sum(dim=1) / mask.sum(dim=1)  # log p(y|x) / |y|
        beta = self.hp["beta"]
        loss = -(2.0 / beta) * F.logsigmoid(-beta * mean_logp - self.hp["gamma"]).mean()
        logs = {"forget_mean_logp": mean_logp.mean().detach()}
        return self.plus_retain_nll(model, retain, loss, logs)
