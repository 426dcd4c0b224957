"""IdkPO: prefer an "I don't know"-style answer to the true answer on forget questions (DPO,
Rafailov et al. 2023, with the refusal as the chosen and the true answer as the rejected answer,
as TOFU's IdkDPO, Maini et al. 2024), plus the retain NLL. Reference = the starting model.

L = -(2 / beta) * mean log sigmoid(beta * [(log p(idk) - log p_ref(idk)) - (log p(y) - log p_ref(y))])
    + retain_weight * NLL(retain)
Refusals come with the data (``Refusal`` of each question), so their words are in the vocabulary.
"""

import torch
import torch.nn.functional as F

from pulse.methods.base import Method, alternative, reference, register, sequence_logprob


@register("IdkPO")
class IdkPreference(Method):
    needs_reference = True
    uses_retain = True
    alternatives = ("refusal",)

    @classmethod
    def defaults(cls):
        return {"beta": 0.1, "retain_weight": 1.0}

    def loss(self, model, forget, retain):
        refusal = alternative(forget, "refusal")
        with torch.no_grad(), reference(model):
            ref_true, ref_idk = sequence_logprob(model, forget), sequence_logprob(model, refusal)
        true, idk = sequence_logprob(model, forget), sequence_logprob(model, refusal)
        margin = (idk - ref_idk) - (true - ref_true)
        beta = self.hp["beta"]
        loss = -(2.0 / beta) * F.logsigmoid(beta * margin).mean()
        logs = {"margin": margin.mean().detach()}
        return self.plus_retain_nll(model, retain, loss, logs)
