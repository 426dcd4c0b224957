"""Every registered method: one optimiser step of its loss raises the forget NLL, and methods
with a retain term keep the retain NLL from blowing up."""

import copy

import pytest
import torch

from pulse.methods import METHODS, build
from pulse.methods.base import nll
from pulse.models.chain import add_lora
from pulse.models.encoding import PROMPTS, Encoder, collate
from pulse.stages.common import splits, train_qas
from pulse.train import batches, fit, seed_everything


@pytest.fixture(scope="module")
def learned(tiny, data_dir):
    """The tiny model after a short full training on the entity questions (answers are likely)."""
    model, processor = copy.deepcopy(tiny[0]), tiny[1]
    encoder = Encoder(processor, PROMPTS["tiny"])
    examples = [encoder.encode_qa(q) for q in train_qas(data_dir, "fictitious") + train_qas(data_dir, "world")]
    stream = batches(examples, 32, processor.tokenizer.pad_token_id, seed=0)
    seed_everything(0)
    fit(model, lambda: (model(**next(stream)).loss, {}), steps=60, lr=3e-3, warmup=5, log=lambda _: None)
    return model, processor


@pytest.fixture(scope="module")
def forget_retain(learned, data_dir):
    _, processor = learned
    encoder = Encoder(processor, PROMPTS["tiny"])
    split = splits(data_dir)["finetuned"]
    pad = processor.tokenizer.pad_token_id

    def batch(ids):
        return collate([encoder.encode_qa(q) for q in train_qas(data_dir, "fictitious", set(ids))], pad)

    return batch(split["forget"]), batch(split["retain"])


def test_the_short_training_taught_the_answers(tiny, learned, forget_retain):
    """The methods start from a model that learned the answers (far below its untrained NLL)."""
    with torch.no_grad():
        untrained = nll(tiny[0], forget_retain[0]).item()
        trained = nll(learned[0], forget_retain[0]).item()
    assert trained < 0.5 * untrained, (untrained, trained)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_step_raises_forget_nll(name, learned, forget_retain):
    forget, retain = forget_retain
    seed_everything(0)
    model = add_lora(copy.deepcopy(learned[0]), rank=8, alpha=16)
    method = build(name, {})
    with torch.no_grad():
        forget_before, retain_before = nll(model, forget).item(), nll(model, retain).item()
    fit(model, lambda: method.loss(model, forget, retain), steps=1, lr=2e-3, log=lambda _: None)
    with torch.no_grad():
        forget_after, retain_after = nll(model, forget).item(), nll(model, retain).item()
    assert forget_after > forget_before + 1e-3, (forget_before, forget_after)
    if method.uses_retain:
        # the retain term must hold: retain NLL moves much less than forget NLL
        assert retain_after - retain_before < 0.5 * (forget_after - forget_before), (retain_before, retain_after)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_own_objective_decreases(name, learned, forget_retain):
    forget, retain = forget_retain
    seed_everything(0)
    model = add_lora(copy.deepcopy(learned[0]), rank=8, alpha=16)
    method = build(name, {})
    history = fit(model, lambda: method.loss(model, forget, retain), steps=3, lr=2e-3, log=lambda _: None)
    with torch.no_grad():
        final, _ = method.loss(model, forget, retain)
    assert final.item() < history[0]["loss"]


def test_reference_is_the_starting_model(learned, forget_retain):
    """With the new adapter disabled the peft model computes exactly the starting model."""
    from pulse.methods.base import reference
    forget, _ = forget_retain
    model = add_lora(copy.deepcopy(learned[0]), rank=8, alpha=16)
    for parameter in model.parameters():
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.1)
    with torch.no_grad():
        with reference(model):
            ref = nll(model, forget)
        start = nll(learned[0], forget)
        moved = nll(model, forget)
    assert torch.equal(ref, start) and not torch.equal(moved, start)


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(KeyError, match="betta"):
        build("NPO", {"betta": 1})
