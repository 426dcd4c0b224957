"""SCRUB (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning"): the starting model
(adapter disabled) is the teacher, the model with the new adapter the student. Steps alternate:

max-step (odd steps):  L = -KL(p_teacher || p_student)(forget)
min-step (even steps): L = alpha * KL(p_teacher || p_student)(retain) + gamma * NLL(retain)
objective (both):      -KL(forget) + alpha * KL(retain) + gamma * NLL(retain)

At student == teacher the KL gradient is exactly zero (in the original, dropout and batch-norm
train mode make the student differ); here the new adapter's B matrices start from N(0, init_std^2)
instead of 0, so the first max-step has a direction. Unlike the original, max-steps continue for
the whole request (no final min-only phase) and one step sees one batch, not one pass.
"""

import torch

from pulse.methods.base import Method, kl_to_reference, nll, register


@register("SCRUB")
class Scrub(Method):
    needs_reference = True
    uses_retain = True

    @classmethod
    def defaults(cls):
        return {"alpha": 1.0, "gamma": 1.0, "init_std": 1.0e-3}

    def __init__(self, **hyperparameters):
        super().__init__(**hyperparameters)
        self.calls = 0

    def prepare(self, model, forget_batches):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.requires_grad and "lora_B" in name:
                    p.normal_(0.0, self.hp["init_std"])
        return {}

    def retain_terms(self, model, retain):
        retain_kl, retain_nll = kl_to_reference(model, retain), nll(model, retain)
        return self.hp["alpha"] * retain_kl + self.hp["gamma"] * retain_nll, retain_kl, retain_nll

    def loss(self, model, forget, retain):
        self.calls += 1
        if self.calls % 2:
            forget_kl = kl_to_reference(model, forget)
            return -forget_kl, {"forget_kl": forget_kl.detach()}
        loss, retain_kl, retain_nll = self.retain_terms(model, retain)
        return loss, {"retain_kl": retain_kl.detach(), "retain_nll": retain_nll.detach()}

    def objective(self, model, forget, retain):
        return -kl_to_reference(model, forget) + self.retain_terms(model, retain)[0]
