"""KL: move the forget-set answer distribution away from the starting model while holding
the retain-set distribution to it; both terms are token-level KL(p_start || p_theta).

L = -KL(forget) + retain_weight * KL(retain)

Unlike GA the forget term measures distance from the starting model's whole next-token
distribution, not only the probability of the reference answer.
"""

from pulse.methods.base import Method, kl_to_reference, register


@register("KL")
class KLDivergence(Method):
    needs_reference = True
    uses_retain = True

    @classmethod
    def defaults(cls):
        return {"retain_weight": 1.0}

    def loss(self, model, forget, retain):
        forget_kl = kl_to_reference(model, forget)
        retain_kl = kl_to_reference(model, retain)
        loss = -forget_kl + self.hp["retain_weight"] * retain_kl
        return loss, {"forget_kl": forget_kl.detach(), "retain_kl": retain_kl.detach()}
