"""Evaluation metrics against hand-computed values, and the batched scorers against plain ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pulse.metrics import mia
from pulse.metrics.generation import exact_match, rouge_l_recall
from pulse.metrics.likelihood import token_statistics
from pulse.metrics.truth import forget_quality, geometric_mean, harmonic_mean, truth_ratio, truth_score


# --- generation scores -------------------------------------------------------------------------

def test_rouge_l_recall_on_known_strings():
    # LCS("the cat sat", "the cat sat on the mat") = 3 of the reference's 6 tokens
    assert rouge_l_recall("the cat sat", "the cat sat on the mat") == pytest.approx(0.5)
    assert rouge_l_recall("the cat sat on the mat", "the cat sat") == pytest.approx(1.0)
    # order matters: LCS("mat the", "the mat") = 1 of 2
    assert rouge_l_recall("mat the", "the mat") == pytest.approx(0.5)
    assert rouge_l_recall("dog", "cat") == 0.0
    assert rouge_l_recall("", "cat") == 0.0


def test_exact_match_normalises_case_and_punctuation():
    assert exact_match(" Paris .", "paris") == 1.0
    assert exact_match("Paris Lima", "Paris") == 0.0


# --- truth ratio, forget quality, utility ------------------------------------------------------

def test_truth_ratio_on_a_toy_distribution():
    # paraphrase: two tokens of p=0.5 -> normalised 0.5; perturbed: 0.25 (one token) and
    # 0.125 (two tokens of 0.125) -> mean 0.1875; R = 0.1875 / 0.5
    ratio = truth_ratio([math.log(0.5)] * 2, [[math.log(0.25)], [math.log(0.125)] * 2])
    assert ratio == pytest.approx(0.375)
    # indifferent model: R = 1
    assert truth_ratio([math.log(0.2)], [[math.log(0.2)]] * 3) == pytest.approx(1.0)
    assert truth_score([0.375, 1.0, 4.0]) == pytest.approx((0.625 + 0 + 0) / 3)
    assert geometric_mean([0.25, 4.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        truth_ratio([], [[0.0]])


def test_forget_quality_is_one_for_identical_and_tiny_for_shifted_samples():
    rng = np.random.default_rng(0)
    sample = rng.normal(size=200)
    assert forget_quality(sample, sample.copy()) == pytest.approx(1.0)
    assert forget_quality(sample, rng.normal(loc=2.0, size=200)) < 1e-10
    # same distribution, different draws: not rejected
    assert forget_quality(sample, rng.normal(size=200)) > 0.01


def test_harmonic_mean():
    assert harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.9, 0.0, 1.0]) == 0.0
    assert harmonic_mean([0.4]) == pytest.approx(0.4)


# --- membership inference ----------------------------------------------------------------------

def test_auc_of_separable_reversed_tied_and_hand_computed_scores():
    assert mia.auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert mia.auc([0, 1], [2, 3]) == 0.0
    assert mia.auc([1, 1], [1, 1]) == 0.5
    # pairs (member > non-member): 0.8>0.5, 0.8>0.1, 0.4<0.5, 0.4>0.1 -> 3 of 4
    assert mia.auc([0.8, 0.4], [0.5, 0.1]) == pytest.approx(0.75)


def test_min_k_zlib_and_privleak():
    assert mia.lowest_mean([-1, -5, -2, -3, -4], 0.4) == pytest.approx(-4.5)
    assert mia.lowest_mean([-1, -2], 0.2) == pytest.approx(-2.0)  # at least one token
    scores = mia.scores([-1.0, -3.0], [0.5, -1.5], "cat", k=0.5)
    assert scores["loss"] == pytest.approx(-2.0)
    assert scores["zlib"] == pytest.approx(-2.0 / mia.zlib_bytes("cat"))
    assert scores["mink"] == pytest.approx(-3.0) and scores["minkpp"] == pytest.approx(-1.5)
    assert mia.privleak(0.75, 0.5) == pytest.approx(50.0)
    assert mia.privleak(0.5, 0.5) == 0.0


def test_min_k_plus_plus_statistic_on_a_two_token_vocabulary():
    p = torch.tensor([0.75, 0.25])
    logits = p.log().unsqueeze(0)
    chosen, standardised = token_statistics(logits, torch.tensor([0]))
    logp = p.log()
    mu = float((p * logp).sum())
    sigma = math.sqrt(float((p * logp ** 2).sum()) - mu ** 2)
    assert float(chosen[0]) == pytest.approx(math.log(0.75), abs=1e-6)
    assert float(standardised[0]) == pytest.approx((math.log(0.75) - mu) / sigma, abs=1e-5)


# --- batched scorers on a real (randomly initialised) tiny LLaVA -------------------------------

@pytest.fixture(scope="module")
def encoder(tiny):
    from pulse.models.encoding import PROMPTS, Encoder
    return Encoder(tiny[1], PROMPTS["tiny"])


@pytest.fixture(scope="module")
def open_questions(data_dir):
    from pulse.data.records import load_examples
    qas, _ = load_examples(data_dir / "world_train.parquet")
    return qas


def test_cached_continuation_scores_equal_plain_forward_passes(tiny, encoder, open_questions):
    from pulse.metrics.likelihood import answer_ids, score_continuations, score_full
    model, _ = tiny
    requests = []
    for qa in open_questions[:12]:  # image and text questions, one- and multi-token continuations
        requests.append((qa.question, qa.image, answer_ids(encoder, qa.answer)))
        for text in (qa.paraphrase, *qa.perturbed):
            requests.append((qa.question, qa.image, answer_ids(encoder, text)))
    cached = score_continuations(model, encoder, requests, batch_size=7)
    plain = score_full(model, encoder, requests, batch_size=64)
    assert len(cached) == len(requests)
    for a, b, (_, _, ids) in zip(cached, plain, requests):
        assert len(a.logprobs) == len(ids)
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)
        np.testing.assert_allclose(a.standardised, b.standardised, atol=1e-3)


def test_batched_left_padded_generation_equals_one_at_a_time(tiny, encoder, open_questions):
    from pulse.metrics.generation import greedy_answers
    model, _ = tiny
    questions = [(qa.question, qa.image) for qa in open_questions[:10]]
    batched = greedy_answers(model, encoder, questions, batch_size=10, max_new_tokens=4)
    single = [greedy_answers(model, encoder, [q], batch_size=1, max_new_tokens=4)[0] for q in questions]
    assert batched == single
    assert all(isinstance(a, str) for a in batched)


def test_pixel_cache_never_returns_a_freed_images_pixels(tiny, encoder):
    """Regression: the cache is keyed by id(image); a freed image's id can be reused."""
    from PIL import Image
    processor = tiny[1]
    for value in range(0, 250, 10):
        image = Image.new("RGB", (32, 32), (value, 255 - value, value // 2))
        expected = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        assert torch.equal(encoder.pixels(image), expected), value
        del image


# --- evaluation pieces -------------------------------------------------------------------------

def test_strided_selection_takes_one_question_per_attribute(open_questions):
    from pulse.stages.evaluate import strided
    chosen = strided(open_questions, 4)
    for (entity, modality), group in pd.DataFrame(
            [{"entity": q.entity, "modality": q.modality, "index": q.index} for q in chosen]).groupby(["entity", "modality"]):
        assert sorted(group["index"]) == [0, 4, 8, 12]
    # every attribute's answer sentence appears once per entity and modality
    attributes = {q.paraphrase.split()[1] for q in chosen if q.entity == chosen[0].entity and q.modality == "mm"}
    assert attributes == {"job", "city", "hobby", "pet"}


def test_truth_ratio_fields_use_only_words_of_the_questions(data_dir):
    from pulse.data.records import all_texts, load_examples
    vocabulary = {w for t in all_texts(sorted(data_dir.glob("*.parquet"))) for w in t.split()}
    qas, _ = load_examples(data_dir / "fictitious_train.parquet")
    for qa in qas:
        assert qa.paraphrase.endswith(" " + qa.answer)
        assert len(qa.perturbed) == 3 and all(not p.endswith(" " + qa.answer) for p in qa.perturbed)
        assert set(" ".join((qa.paraphrase, *qa.perturbed)).split()) <= vocabulary


def test_gold_data_drops_only_the_forget_entities_of_one_source(data_dir, tmp_path):
    from pulse.io import read_json
    from pulse.stages import gold
    gold.run({"knowledge": "finetuned"}, data_dir, tmp_path / "gold", log=lambda *_: None)
    forget = set(read_json(data_dir / "splits.json")["finetuned"]["forget"])
    kept = set(pd.read_parquet(tmp_path / "gold" / "fictitious_train.parquet").ID)
    original = set(pd.read_parquet(data_dir / "fictitious_train.parquet").ID)
    assert kept == original - forget and forget <= original
    for name in ("world_train.parquet", "fictitious_test.parquet", "splits.json"):
        assert (tmp_path / "gold" / name).read_bytes() == (data_dir / name).read_bytes()


def test_summary_rows_compare_each_checkpoint_with_its_gold_model(tmp_path):
    """Forget quality 1 and PrivLeak 0 against an identical gold model; a model that knows the
    forget set (small truth ratios, high member scores) gets low forget quality and AUC 1."""
    from pulse.io import write_json
    from pulse.report.summary import summarize
    splits = {"finetuned": {"population": "fictitious", "forget": ["f0", "f1"], "retain": ["f2"]},
              "pretrained": {"population": "world", "forget": ["w0"], "retain": ["w1"]}}
    write_json(tmp_path / "splits.json", splits)
    rng = np.random.default_rng(0)

    def payload(knows_forget: bool):
        items, open_items = [], []
        for entity, population in [("f0", "fictitious"), ("f1", "fictitious"), ("f2", "fictitious"),
                                   ("w0", "world"), ("w1", "world"), ("h0", "holdout"), ("u0", "utility")]:
            member = entity != "h0" and (knows_forget or entity not in ("f0", "f1"))
            for modality in ("mm", "text"):
                items.append({"entity": entity, "population": population, "variant": "train",
                              "modality": modality, "correct": int(member), "answer_logprob": -1.0})
                for index in range(20):
                    open_items.append({
                        "entity": entity, "population": population, "variant": "train", "modality": modality,
                        "index": index, "prediction": "x", "rouge_l": float(member), "exact": float(member),
                        "truth_ratio": float(rng.uniform(0.05, 0.2) if member else rng.uniform(0.8, 1.3)),
                        **{f"mia_{s}": float(rng.normal(0 if member else -3)) for s in mia.SCORES}})
        return {"chain": [], "items": items, "open": open_items}

    write_json(tmp_path / "knows.json", payload(True))
    write_json(tmp_path / "gold.json", payload(False))
    manifest = [{"knowledge": "finetuned", "method": m, "schedule": "oneshot", "step": 0, "requests": 1, "path": str(p)}
                for m, p in (("GA", tmp_path / "knows.json"), ("gold", tmp_path / "gold.json"))]
    table = summarize(manifest, tmp_path / "splits.json", {"finetuned": str(tmp_path / "gold.json")})

    def cell(method, metric, split="forget", modality="all"):
        rows = table[(table.method == method) & (table.metric == metric) & (table.split == split)
                     & (table.modality == modality)]
        assert len(rows) == 1, (method, metric, split, modality)
        return float(rows.value.iloc[0])

    assert cell("GA", "forget_quality") < 1e-6
    assert cell("GA", "mia_auc_loss") > 0.9 and 0.2 < cell("gold", "mia_auc_loss") < 0.8
    assert cell("GA", "privleak_loss") == pytest.approx(100 * (cell("GA", "mia_auc_loss") - cell("gold", "mia_auc_loss"))
                                                       / cell("gold", "mia_auc_loss"))
    assert cell("GA", "model_utility", "all") == pytest.approx(1.0)
    assert not ((table.method == "gold") & (table.metric == "forget_quality")).any()
    # the gold model against itself
    same = summarize([{**manifest[1], "method": "GA"}], tmp_path / "splits.json", {"finetuned": str(tmp_path / "gold.json")})
    fq = same[(same.metric == "forget_quality") & (same.split == "forget")]
    assert set(fq.modality) == {"all", "mm", "text"} and (fq.value == 1.0).all()
    assert (same[same.metric.str.startswith("privleak")].value == 0).all()


def test_batched_option_scores_equal_one_forward_pass_per_option(tiny, encoder, data_dir):
    """score_options sorts questions by length and scores one-token options from the prompt's
    next-token distribution: every option's score must still equal the summed log-probability of
    that option scored on its own, returned in the questions' order."""
    import dataclasses

    from pulse.data.records import load_examples
    from pulse.metrics.likelihood import score_full
    from pulse.metrics.mcq import score_options
    model, _ = tiny
    mcqs = load_examples(data_dir / "world_train.parquet")[1][:10]
    mcqs += load_examples(data_dir / "fictitious_test.parquet")[1][:6]
    # some questions with multi-token options (the longer-option path), mixed with one-token ones
    mcqs += [dataclasses.replace(q, options=tuple(f"{o} {q.options[0]}" for o in q.options)) for q in mcqs[::4]]
    assert {q.modality for q in mcqs} == {"mm", "text"}
    batched = score_options(model, encoder, mcqs, batch_size=5)
    requests = [(q.question, q.image, encoder.continuation_ids(o)) for q in mcqs for o in q.options]
    plain = [sum(c.logprobs) for c in score_full(model, encoder, requests, batch_size=64)]
    np.testing.assert_allclose([s for scores in batched for s in scores], plain, atol=1e-4)


# --- shared image prefixes ---------------------------------------------------------------------

class _TokenCounter:
    """Counts the tokens a model's forward passes process (padding included)."""

    def __init__(self, model):
        self.tokens = 0
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, _module, _args, kwargs):
        self.tokens += kwargs["input_ids"].numel()

    def close(self):
        self.handle.remove()


def test_questions_about_one_image_run_its_prefix_once(tiny, encoder, data_dir):
    """MCQs about one image share the prompt's image part: it runs once per image, the scores
    equal one plain pass per option, and fewer tokens go through the model than plain passes use."""
    from pulse.data.records import load_examples
    from pulse.metrics.likelihood import score_full
    from pulse.metrics.mcq import score_options
    from pulse.metrics.prefix import group_by_image
    model, _ = tiny
    mcqs = load_examples(data_dir / "world_train.parquet")[1] + load_examples(data_dir / "holdout_test.parquet")[1]
    prompts = [(encoder.prompt_ids(q.question, q.image), q.image) for q in mcqs]
    groups, plain = group_by_image(model, encoder, prompts)
    image_token = model.config.image_token_id
    assert groups and all(len(g.members) >= 2 for g in groups)
    assert {n for g in groups for n in g.members} == {n for n, q in enumerate(mcqs) if q.image is not None}
    assert plain == [n for n, q in enumerate(mcqs) if q.image is None]
    for group in groups:
        assert len({id(mcqs[n].image) for n in group.members}) == 1
        first = prompts[group.members[0]][0]
        assert all(prompts[n][0][:group.prefix_length] == first[:group.prefix_length] for n in group.members)
        assert image_token in first[:group.prefix_length]
        assert all(image_token not in prompts[n][0][group.prefix_length:] for n in group.members)

    counter = _TokenCounter(model)
    try:
        shared = score_options(model, encoder, mcqs, batch_size=16)
    finally:
        counter.close()
    assert counter.tokens < 0.8 * sum(len(ids) for ids, _ in prompts)
    requests = [(q.question, q.image, encoder.continuation_ids(o)) for q in mcqs for o in q.options]
    plain_scores = [sum(c.logprobs) for c in score_full(model, encoder, requests, batch_size=64)]
    np.testing.assert_allclose([s for scores in shared for s in scores], plain_scores, atol=1e-4)


def test_shared_prefixes_only_where_they_are_exact(tiny, encoder, data_dir, monkeypatch):
    """An image asked about once, a model that picks weights from the whole prompt, and
    sliding-window attention all run plainly."""
    from pulse.data.records import load_examples
    from pulse.metrics.prefix import group_by_image, shares_prefixes
    model, _ = tiny
    mcqs = [q for q in load_examples(data_dir / "world_train.parquet")[1] if q.image is not None]
    once = [q for q in mcqs if q.image is mcqs[0].image][:1] + [q for q in mcqs if q.image is not mcqs[0].image][:1]
    groups, plain = group_by_image(model, encoder, [(encoder.prompt_ids(q.question, q.image), q.image) for q in once])
    assert groups == [] and plain == [0, 1]
    assert shares_prefixes(model, encoder)
    monkeypatch.setattr(model.config.get_text_config(), "sliding_window", 8, raising=False)
    assert not shares_prefixes(model, encoder)
    monkeypatch.undo()
    monkeypatch.setattr(model, "routes_whole_prompts", True, raising=False)
    assert not shares_prefixes(model, encoder)
    groups, plain = group_by_image(model, encoder, [(encoder.prompt_ids(q.question, q.image), q.image) for q in mcqs])
    assert groups == [] and plain == list(range(len(mcqs)))


def test_cached_continuations_on_shared_prefixes_equal_plain_passes(tiny, encoder, data_dir):
    """Truth-ratio/MIA scoring: the open questions about one image run its prefix once, then the
    question, then each answer on the cache; equal to one plain pass per answer."""
    from pulse.data.records import load_examples
    from pulse.metrics.likelihood import answer_ids, score_continuations, score_full
    from pulse.metrics.prefix import group_by_image
    model, _ = tiny
    qas = load_examples(data_dir / "fictitious_train.parquet")[0][:24]
    requests = [(qa.question, qa.image, answer_ids(encoder, text)) for qa in qas
                for text in (qa.answer, qa.paraphrase, *qa.perturbed)]
    groups, _ = group_by_image(model, encoder, [(encoder.prompt_ids(qa.question, qa.image), qa.image) for qa in qas])
    assert groups
    counter = _TokenCounter(model)
    try:
        cached = score_continuations(model, encoder, requests, batch_size=10)
    finally:
        counter.close()
    plain = score_full(model, encoder, requests, batch_size=64)
    assert counter.tokens < sum(len(encoder.prompt_ids(q, image)) + len(ids) for q, image, ids in requests) / 2
    for a, b in zip(cached, plain):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)
        np.testing.assert_allclose(a.standardised, b.standardised, atol=1e-3)


def test_generation_on_shared_prefixes_equals_plain_generation(tiny, encoder, data_dir, monkeypatch):
    """Greedy answers continuing an image's shared prefix are the answers of plain batched
    generation, from fewer tokens through the model."""
    from pulse.data.records import load_examples
    from pulse.metrics.generation import greedy_answers
    from pulse.metrics.prefix import group_by_image
    model, _ = tiny
    qas = load_examples(data_dir / "fictitious_train.parquet")[0][:24]
    questions = [(qa.question, qa.image) for qa in qas]
    assert group_by_image(model, encoder, [(encoder.prompt_ids(q, image), image) for q, image in questions])[0]
    counter = _TokenCounter(model)
    try:
        shared = greedy_answers(model, encoder, questions, batch_size=8, max_new_tokens=4)
        shared_tokens = counter.tokens
        monkeypatch.setattr(model, "routes_whole_prompts", True, raising=False)  # switches sharing off
        plain = greedy_answers(model, encoder, questions, batch_size=8, max_new_tokens=4)
    finally:
        counter.close()
    assert shared == plain
    assert shared_tokens < counter.tokens - shared_tokens
