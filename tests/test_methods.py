"""Every registered method: one optimiser step of its loss raises the forget NLL and lowers its own
objective, and methods with a retain term keep the retain NLL from blowing up. The routed
lifelong method (LUMoE) is checked through the routed model: forget accuracy falls while an
input routed nowhere is answered exactly as by the starting model."""

import copy

import pytest
import torch

from pulse.data.records import load_examples
from pulse.methods import METHODS, build
from pulse.methods.base import alternative, collate_forget, nll, true_answers
from pulse.metrics.mcq import choices, score_options
from pulse.models.chain import add_lora, load_chain, save_adapter, save_model
from pulse.models.encoding import PROMPTS, Encoded, Encoder, collate
from pulse.models.routing import RoutedExperts, prompt_mask
from pulse.stages.common import splits, train_qas
from pulse.stages.unlearn import forget_examples, prompt_suffix
from pulse.train import batches, fit, seed_everything

PLAIN = sorted(name for name, cls in METHODS.items() if not cls.routed)
ROUTED = sorted(name for name, cls in METHODS.items() if cls.routed)


@pytest.fixture(scope="module")
def learned(tiny, data_dir):
    """The tiny model after a short full training on the entity questions (answers are likely)."""
    # One thread, as the workflow's unlearning jobs use and whatever ran before in this process:
    # the thread count changes float sums, and these checks must not depend on test order.
    torch.set_num_threads(1)
    model, processor = copy.deepcopy(tiny[0]), tiny[1]
    encoder = Encoder(processor, PROMPTS["tiny"])
    examples = [encoder.encode_qa(q) for q in train_qas(data_dir, "fictitious") + train_qas(data_dir, "world")]
    stream = batches(examples, 32, processor.tokenizer.pad_token_id, seed=0)
    seed_everything(0)
    fit(model, lambda: (model(**next(stream)).loss, {}), steps=100, lr=3e-3, warmup=5, log=lambda _: None)
    return model, processor


@pytest.fixture(scope="module")
def forget_retain(learned, data_dir):
    """A forget batch whose examples carry every alternative answer, and a retain batch."""
    _, processor = learned
    encoder = Encoder(processor, PROMPTS["tiny"])
    split = splits(data_dir)["finetuned"]
    pad = processor.tokenizer.pad_token_id
    population = train_qas(data_dir, "fictitious")
    forget_qas = [q for q in population if q.entity in set(split["forget"])]
    forget = forget_examples(encoder, forget_qas, population, ("refusal", "wrong"), seed=0)
    retain = collate([encoder.encode_qa(q) for q in population if q.entity in set(split["retain"])], pad)
    return collate_forget(forget, pad), retain


def test_the_short_training_taught_the_answers(tiny, learned, forget_retain):
    """The methods start from a model that learned the answers (far below its untrained NLL)."""
    with torch.no_grad():
        untrained = nll(tiny[0], forget_retain[0]).item()
        trained = nll(learned[0], forget_retain[0]).item()
    assert trained < 0.5 * untrained, (untrained, trained)


def test_forget_batches_carry_wrong_and_refusal_answers(forget_retain, learned):
    forget, _ = forget_retain
    tokenizer = learned[1].tokenizer
    true_ids, wrong_ids = forget["input_ids"], alternative(forget, "wrong")["input_ids"]
    refusal_ids = alternative(forget, "refusal")["input_ids"]
    assert true_ids.shape[0] == wrong_ids.shape[0] == refusal_ids.shape[0]
    from pulse.data.synthetic import REFUSALS

    def answer(ids, labels):
        return tokenizer.decode(ids[labels != -100], skip_special_tokens=True).strip()

    for row in range(true_ids.shape[0]):
        true = answer(true_ids[row], forget["labels"][row])
        wrong = answer(wrong_ids[row], alternative(forget, "wrong")["labels"][row])
        refusal = answer(refusal_ids[row], alternative(forget, "refusal")["labels"][row])
        assert true and wrong and true != wrong
        assert refusal in REFUSALS
    assert set(true_answers(forget)) == {"input_ids", "attention_mask", "labels", "pixel_values"}


def prepared(name, learned, forget):
    seed_everything(0)
    model = add_lora(copy.deepcopy(learned[0]), rank=8, alpha=16)
    method = build(name, {})
    method.prepare(model, [forget])
    return model, method


@pytest.mark.parametrize("name", PLAIN)
def test_one_step_raises_forget_nll(name, learned, forget_retain):
    forget, retain = forget_retain
    model, method = prepared(name, learned, forget)
    with torch.no_grad():
        forget_before, retain_before = nll(model, forget).item(), nll(model, retain).item()
    # Methods that train toward other answers (wrong ones, a refusal) raise the true answers' NLL
    # only through that training: their first step from a fresh adapter (B = 0, so only B moves)
    # changes it by ~1e-4 either way, so they get three steps.
    steps = 3 if method.alternatives else 1
    fit(model, lambda: method.loss(model, forget, retain), steps=steps, lr=2e-3, log=lambda _: None)
    with torch.no_grad():
        forget_after, retain_after = nll(model, forget).item(), nll(model, retain).item()
    assert forget_after > forget_before + 1e-4, (forget_before, forget_after)  # float noise is ~1e-6
    if method.uses_retain:
        # the retain term must hold: retain NLL moves much less than forget NLL
        assert retain_after - retain_before < 0.5 * (forget_after - forget_before), (retain_before, retain_after)


@pytest.mark.parametrize("name", PLAIN)
def test_method_own_objective_decreases(name, learned, forget_retain):
    forget, retain = forget_retain
    model, method = prepared(name, learned, forget)
    with torch.no_grad():
        before = method.objective(model, forget, retain).item()
    fit(model, lambda: method.loss(model, forget, retain), steps=3, lr=2e-3, log=lambda _: None)
    with torch.no_grad():
        after = method.objective(model, forget, retain).item()
    assert after < before, (before, after)


def test_salun_moves_only_salient_weights(learned, forget_retain):
    forget, retain = forget_retain
    model, method = prepared("SalUn", learned, forget)
    start = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    fit(model, lambda: method.loss(model, forget, retain), steps=3, lr=2e-3, log=lambda _: None)
    moved = torch.cat([(p.detach() != start[n]).flatten() for n, p in model.named_parameters() if n in start])
    fraction = moved.float().mean().item()
    assert 0.3 < fraction <= method.hp["saliency"] + 1e-6, fraction


def test_scrub_starts_the_student_near_the_teacher(learned, forget_retain):
    from pulse.methods.base import kl_to_reference
    forget, _ = forget_retain
    model, _ = prepared("SCRUB", learned, forget)
    with torch.no_grad():
        kl = kl_to_reference(model, forget).item()
    assert 0.0 < kl < 1e-2, kl


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


def test_lumoe_refuses_an_unknown_expert_method():
    with pytest.raises(KeyError, match="expert"):
        build("LUMoE", {"expert": "Forgetron"})


# --- routing -------------------------------------------------------------------------------------

def test_prompt_mask_stops_after_the_last_prompt_suffix():
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 3, 0], [1, 5, 7, 8, 7, 8, 9, 3]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1] * 8])
    mask = prompt_mask(ids, attention, [7, 8])
    assert mask.tolist() == [[False, True, True, True, True, False, False, False],
                             [False, True, True, True, True, True, False, False]]
    assert prompt_mask(ids, attention, [4, 4])[1].tolist() == [False] + [True] * 7


def test_prompt_suffix_is_the_common_end():
    assert prompt_suffix([[1, 2, 9, 7, 8], [1, 4, 7, 8], [3, 3, 5, 7, 8]]) == [7, 8]


@pytest.fixture(scope="module")
def lumoe_checkpoint(learned, data_dir, tmp_path_factory):
    """Step 0 (the learned model) and one LUMoE request on the first forget entity, saved as the
    workflow saves them, then loaded back through load_chain."""
    from pulse.stages import unlearn
    model, processor = learned
    base = tmp_path_factory.mktemp("lumoe_base")
    save_model(model, processor, base)
    split = splits(data_dir)["finetuned"]
    params = {"knowledge": "finetuned", "method": "LUMoE", "schedule": "sequential", "request": 1,
              "requests": len(split["forget"]), "seed": 0, "device": "cpu", "dtype": "float32",
              "backend": "tiny", "lora": {"rank": 8, "alpha": 16, "dropout": 0.0}, "lr": 2e-3,
              "epochs": 10, "batch_size": 16, "hyperparameters": {}}
    step = tmp_path_factory.mktemp("lumoe") / "step1"
    unlearn.run(params, data_dir, base, [], step, log=lambda _: None)
    return base, step, split["forget"][0]


def mcq_accuracy(model, processor, data_dir, entities):
    _, mcqs = load_examples(data_dir / "fictitious_train.parquet", set(entities))
    encoder = Encoder(processor, PROMPTS["tiny"])
    predicted = choices(score_options(model, encoder, mcqs))
    return sum(p == q.answer_index for p, q in zip(predicted, mcqs)) / len(mcqs)


def test_lumoe_saves_an_expert_with_its_router(lumoe_checkpoint):
    _, step, _ = lumoe_checkpoint
    assert {"adapter_model.safetensors", "router.safetensors", "router.json"} <= {p.name for p in step.iterdir()}
    start, _ = load_chain(lumoe_checkpoint[0], [step], experts=False)
    assert not isinstance(start, RoutedExperts)


def test_lumoe_routed_model_forgets_and_leaves_other_inputs_bit_for_bit(lumoe_checkpoint, learned, data_dir):
    base, step, forgotten = lumoe_checkpoint
    start, processor = load_chain(base, [])
    routed, _ = load_chain(base, [step])
    assert isinstance(routed, RoutedExperts)
    retain_entities = splits(data_dir)["finetuned"]["retain"]
    before = mcq_accuracy(start, processor, data_dir, [forgotten])
    after = mcq_accuracy(routed, processor, data_dir, [forgotten])
    assert before >= 0.75 and after <= before - 0.5, (before, after)
    # A retain query (image + text questions): routed to no expert, identical logits.
    encoder = Encoder(processor, PROMPTS["tiny"])
    qas = [q for q in train_qas(data_dir, "fictitious", set(retain_entities))][:16]
    batch = collate([encoder.encode_qa(q) for q in qas], processor.tokenizer.pad_token_id)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(routed(**inputs).logits, start(**inputs).logits)
    # ... while a batch mixing forget and retain rows changes only the forget rows.
    mixed = [q for q in train_qas(data_dir, "fictitious", {forgotten})][:4] + qas[:4]
    batch = collate([encoder.encode_qa(q) for q in mixed], processor.tokenizer.pad_token_id)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        routed_logits, start_logits = routed(**inputs).logits, start(**inputs).logits
    same = [torch.equal(routed_logits[i], start_logits[i]) for i in range(len(mixed))]
    assert same == [False] * 4 + [True] * 4


def test_lumoe_cached_scoring_and_generation_route_like_forward(lumoe_checkpoint, data_dir):
    """The evaluation's other paths (prompt cache + continuation pass, greedy generation) apply the
    same routes: identical to the starting model on retain questions, different on forget ones."""
    from pulse.metrics.generation import greedy_answers
    from pulse.metrics.likelihood import score_continuations, score_full
    base, step, forgotten = lumoe_checkpoint
    start, processor = load_chain(base, [])
    routed, _ = load_chain(base, [step])
    # A routed model never runs shared image prefixes (its expert depends on the whole prompt);
    # the starting model takes the same path here, so that equal means bit-for-bit equal.
    start.routes_whole_prompts = True
    encoder = Encoder(processor, PROMPTS["tiny"])
    retain = [q for q in train_qas(data_dir, "fictitious", set(splits(data_dir)["finetuned"]["retain"]))][:6]
    forget = [q for q in train_qas(data_dir, "fictitious", {forgotten})][:6]
    requests = [(q.question, q.image, encoder.answer_ids(text)) for q in retain + forget
                for text in (q.answer, q.refusal)]
    cached_start = score_continuations(start, encoder, requests, batch_size=8)
    cached_routed = score_continuations(routed, encoder, requests, batch_size=8)
    full_routed = score_full(routed, encoder, requests, batch_size=8)
    half = 2 * len(retain)
    assert cached_routed[:half] == cached_start[:half]
    assert all(a != b for a, b in zip(cached_routed[half:], cached_start[half:]))
    for a, b in zip(cached_routed, full_routed):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4
    questions = [(q.question, q.image) for q in retain + forget]
    assert greedy_answers(routed, encoder, questions)[:len(retain)] == greedy_answers(start, encoder, questions)[:len(retain)]
