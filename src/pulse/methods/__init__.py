"""Unlearning methods: one small file each, registered by name.

A method is a loss on a forget batch and a retain batch; the training loop, data, checkpoints and
evaluation are shared. Adding a method = one file here + one entry under ``unlearn.methods``.
"""

from pulse.methods.base import METHODS, Method, register
from pulse.methods import ga, ga_klr, graddiff, kl, npo  # noqa: F401  (registration)
from pulse.methods import idkpo, lumoe, randlabel, salun, scrub, simnpo  # noqa: F401

__all__ = ["METHODS", "Method", "register", "build"]


def build(name: str, hyperparameters: dict) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown unlearning method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name](**hyperparameters)
