"""LUMoE-style lifelong unlearning (after MLUBench, Li et al. 2026): every request trains its own
LoRA expert, and a router decides at inference whether an input gets an expert at all.

- Each request's expert starts from the starting model of the chain (step 0), never from the
  previous requests' experts, and is trained with the loss of the ``expert`` method (default GA).
- Next to the expert the request stores its router: the input embeddings of its forget prompts
  and of the retain prompts. An input goes to the expert whose forget prompts cover it best if
  that coverage reaches ``threshold`` and beats the retain prompts' coverage
  (``pulse.models.routing``); otherwise the model answers as the starting model, unchanged.
- The model at step k = step 0 + experts 1..k behind the router (``load_chain`` builds it).

Differs from LUMoE: the router is a training-free nearest-neighbour rule on the model's own input
embeddings (forget vs retain prompts), not a trained gate module; routing is top-1 per input.
"""

from pulse.methods.base import METHODS, Method, register


@register("LUMoE")
class LifelongExperts(Method):
    routed = True

    @classmethod
    def defaults(cls):
        return {"expert": "GA", "threshold": 0.93}

    def __init__(self, **hyperparameters):
        super().__init__(**hyperparameters)
        inner = METHODS.get(self.hp["expert"])
        if inner is None or inner.routed:
            raise KeyError(f"LUMoE: 'expert' must name a non-routed method, one of "
                           f"{sorted(n for n, m in METHODS.items() if not m.routed)}; got {self.hp['expert']!r}")
        threshold = self.hp["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise KeyError(f"LUMoE: 'threshold' must be in (0, 1]; got {self.hp['threshold']!r}")
        self.expert = inner()
        self.needs_reference = self.expert.needs_reference
        self.uses_retain = self.expert.uses_retain
        self.alternatives = self.expert.alternatives

    def loss(self, model, forget, retain):
        return self.expert.loss(model, forget, retain)

    def prepare(self, model, forget_batches):
        return self.expert.prepare(model, forget_batches)

    def objective(self, model, forget, retain):
        return self.expert.objective(model, forget, retain)
