"""RandLabel (random labelling, as in MU-Bench, Cheng & Amiri 2024, after Golatkar et al. 2020 /
Graves et al. 2021): fine-tune the forget questions toward a randomly chosen wrong answer (an
answer another entity has for the same kind of question), plus the retain NLL.

L = NLL(forget questions -> wrong answers) + retain_weight * NLL(retain)
The wrong answer of each forget question is drawn once per request (seeded).
"""

from pulse.methods.base import Method, alternative, nll, register


@register("RandLabel")
class RandomLabel(Method):
    uses_retain = True
    alternatives = ("wrong",)

    @classmethod
    def defaults(cls):
        return {"retain_weight": 1.0}

    def loss(self, model, forget, retain):
        wrong_nll = nll(model, alternative(forget, "wrong"))
        loss, logs = wrong_nll, {"wrong_nll": wrong_nll.detach()}
        return self.plus_retain_nll(model, retain, loss, logs)
