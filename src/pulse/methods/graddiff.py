"""Gradient difference (GradDiff, TOFU): ascend forget NLL, descend retain NLL.

L = -NLL(forget) + retain_weight * NLL(retain)
"""

from pulse.methods.base import Method, nll, register


@register("GradDiff")
class GradientDifference(Method):
    uses_retain = True

    @classmethod
    def defaults(cls):
        return {"retain_weight": 1.0}

    def loss(self, model, forget, retain):
        forget_nll = nll(model, forget)
        retain_nll = nll(model, retain)
        loss = -forget_nll + self.hp["retain_weight"] * retain_nll
        return loss, {"forget_nll": forget_nll.detach(), "retain_nll": retain_nll.detach()}
