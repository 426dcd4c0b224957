"""Gradient ascent (GA): maximise the NLL of the forget answers."""

from pulse.methods.base import Method, nll, register


@register("GA")
class GradientAscent(Method):
    def loss(self, model, forget, retain):
        forget_nll = nll(model, forget)
        return -forget_nll, {"forget_nll": forget_nll.detach()}
