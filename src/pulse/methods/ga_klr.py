"""GA+KLR (PULSE): gradient ascent on forget + KL to the starting model on retain.

L = -NLL(forget) + kl_weight * KL(p_start || p_theta)(retain)
"""

from pulse.methods.base import Method, kl_to_reference, nll, register


@register("GA+KLR")
class GradientAscentKLRetain(Method):
    needs_reference = True
    uses_retain = True

    @classmethod
    def defaults(cls):
        return {"kl_weight": 1.0}

    def loss(self, model, forget, retain):
        forget_nll = nll(model, forget)
        retain_kl = kl_to_reference(model, retain)
        loss = -forget_nll + self.hp["kl_weight"] * retain_kl
        return loss, {"forget_nll": forget_nll.detach(), "retain_kl": retain_kl.detach()}
