"""Real back-ends and real data, offline: tiny random models of the real classes (LLaVA-1.5,
Qwen2-VL, Qwen2.5-VL) saved as checkpoints, and a fixture in the MLLMU-Bench release layout."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mllmu_fixture import texts_of, write_checkpoint, write_mllmu
from pulse.data.records import DataError, load_examples
from pulse.io import read_json

MODEL_DEFAULTS = {"revision": None, "allow_download": False, "trust_remote_code": False, "hash_weights": True,
                  "device": "cpu", "dtype": "float32",
                  "lora_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                  "train_projector": False, "train_vision": False, "gradient_checkpointing": False}
MLLMU = {"source": "mllmu", "seed": 0, "forget_size": 2, "download": False, "repo": "MLLMMU/MLLMU-Bench",
         "revision": None, "forget_ratio": 10, "holdout": 2, "finetune_qa": "ft_Data", "select_known": None}


@pytest.fixture(scope="session")
def mllmu_root(tmp_path_factory) -> Path:
    return write_mllmu(tmp_path_factory.mktemp("MLLMU-Bench"))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, mllmu_root) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    texts = texts_of(mllmu_root)
    return {backend: write_checkpoint(root / backend, backend, texts)
            for backend in ("llava", "qwen2_vl", "qwen2_5_vl")}


def converted(mllmu_root, out, **overrides):
    from pulse.stages import data
    params = {**MLLMU, "path": str(mllmu_root), **overrides}
    data.run(params, out, log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def mllmu_data(tmp_path_factory, mllmu_root) -> Path:
    return converted(mllmu_root, tmp_path_factory.mktemp("converted"),
                     general={"path": str(mllmu_root / "MMBench_DEV_EN.parquet"), "limit": None})


def broken_copy(mllmu_root: Path, tmp_path: Path) -> Path:
    import shutil
    target = tmp_path / "MLLMU-Bench"
    shutil.copytree(mllmu_root, target)
    return target


# --- the MLLMU-Bench loader ---------------------------------------------------------------------

def test_converter_writes_the_populations_of_the_release(mllmu_root, mllmu_data):
    forget = pd.read_parquet(mllmu_root / "forget_10" / "train-00000-of-00001.parquet")
    retain = pd.read_parquet(mllmu_root / "retain_90" / "train-00000-of-00001.parquet")
    splits = read_json(mllmu_data / "splits.json")
    fictitious = pd.read_parquet(mllmu_data / "fictitious_train.parquet")
    holdout = pd.read_parquet(mllmu_data / "holdout_train.parquet")
    assert sorted(splits["finetuned"]["forget"]) == sorted(forget.ID)
    assert set(fictitious.ID) | set(holdout.ID) == set(forget.ID) | set(retain.ID)
    assert len(holdout) == 2 and not set(holdout.ID) & set(splits["finetuned"]["retain"])
    assert set(splits["finetuned"]["retain"]) == set(retain.ID) - set(holdout.ID)
    world = pd.read_parquet(mllmu_data / "world_train.parquet")
    assert len(world) == len(pd.read_parquet(mllmu_root / "Retain_Set" / "train-00000-of-00001.parquet"))
    assert len(pd.read_parquet(mllmu_data / "world_test.parquet")) == 0  # no celebrity test variant
    assert set(pd.read_parquet(mllmu_data / "fictitious_test.parquet").ID) == set(fictitious.ID)


def test_training_pairs_come_from_ft_data(mllmu_root, mllmu_data):
    ft = pd.read_parquet(mllmu_root / "ft_Data" / "train-00000-of-00001.parquet").set_index("ID")
    qas, mcqs = load_examples(mllmu_data / "fictitious_train.parquet")
    some = qas[0].entity
    expected = [(p["Question"], p["Answer"]) for p in json.loads(ft.loc[some, "metadata"])]
    assert [(q.question, q.answer) for q in qas if q.entity == some] == expected
    assert all(q.image is not None for q in qas)  # ft_Data pairs are asked with the image
    assert {m.modality for m in mcqs} == {"mm", "text"}


def test_test_rows_take_one_of_their_images(mllmu_root, mllmu_data):
    shards = sorted((mllmu_root / "Test_Set").glob("*.parquet"))
    source = pd.concat([pd.read_parquet(p) for p in shards]).set_index("ID")
    test = pd.read_parquet(mllmu_data / "fictitious_test.parquet")
    for _, row in test.iterrows():
        assert row["image"]["bytes"] in [image["bytes"] for image in source.loc[row["ID"], "images"]]


def test_general_benchmark_rows_skip_absent_options(mllmu_data):
    _, mcqs = load_examples(mllmu_data / "utility_test.parquet")
    assert mcqs and {len(m.options) for m in mcqs} == {2, 4}
    assert all(0 <= m.answer_index < len(m.options) and m.image is not None for m in mcqs)


def test_ft_data_without_id_is_joined_by_image(mllmu_root, tmp_path):
    root = broken_copy(mllmu_root, tmp_path)
    path = root / "ft_Data" / "train-00000-of-00001.parquet"
    pd.read_parquet(path).drop(columns=["ID"]).to_parquet(path, index=False)
    data_dir = converted(root, tmp_path / "out")
    qas, _ = load_examples(data_dir / "fictitious_train.parquet")
    assert qas and qas[0].answer


def test_missing_column_names_file_and_column(mllmu_root, tmp_path):
    root = broken_copy(mllmu_root, tmp_path)
    path = root / "retain_90" / "train-00000-of-00001.parquet"
    pd.read_parquet(path).drop(columns=["Classification_Task"]).to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"retain_90/train-00000-of-00001\.parquet: missing column\(s\) "
                                        r"\['Classification_Task'\]"):
        converted(root, tmp_path / "out")


def test_corrupt_image_names_file_and_row(mllmu_root, tmp_path):
    root = broken_copy(mllmu_root, tmp_path)
    path = root / "forget_10" / "train-00000-of-00001.parquet"
    frame = pd.read_parquet(path)
    frame.at[2, "image"] = {"bytes": b"\x89PNG not really", "path": "broken.png"}
    frame.to_parquet(path, index=False)
    with pytest.raises(DataError, match=rf"forget_10/train-00000-of-00001\.parquet row 2 \(ID {frame.ID[2]}\): "
                                        "image cannot be decoded"):
        converted(root, tmp_path / "out")


def test_corrupt_test_image_and_cli_exit(mllmu_root, tmp_path):
    """Through the CLI: exit status 2 and one line naming the shard, row and image."""
    root = broken_copy(mllmu_root, tmp_path)
    path = root / "Test_Set" / "train-00001-of-00002.parquet"
    frame = pd.read_parquet(path)
    images = list(frame.at[1, "images"])
    images = [{"bytes": b"garbage", "path": "x.png"} for _ in images]
    frame.at[1, "images"] = images
    frame.to_parquet(path, index=False)
    params = json.dumps({**MLLMU, "path": str(root)})
    result = subprocess.run([sys.executable, "-m", "pulse", "data", "--params", params, "--out",
                             str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Test_Set/train-00001-of-00002.parquet row 1" in result.stderr
    assert "image cannot be decoded" in result.stderr and "Traceback" not in result.stderr


def test_missing_subset_is_named(mllmu_root, tmp_path):
    import shutil
    root = broken_copy(mllmu_root, tmp_path)
    shutil.rmtree(root / "Retain_Set")
    with pytest.raises(DataError, match=r"Retain_Set: no parquet files"):
        converted(root, tmp_path / "out")


# --- back-ends: loading, prompts, image tokens --------------------------------------------------

def recorded(checkpoint: Path, backend: str, out: Path, **model):
    from pulse.models.backends import record_checkpoint
    config = {**MODEL_DEFAULTS, "backend": backend, "checkpoint": str(checkpoint), **model}
    record_checkpoint(config, out, log=lambda _: None)
    return out


@pytest.mark.parametrize("backend", ["llava", "qwen2_vl", "qwen2_5_vl"])
def test_image_token_count_matches_the_processor_and_model(backend, checkpoints, mllmu_data, tmp_path):
    from pulse.models.chain import load_base
    from pulse.models.encoding import PROMPTS, Encoder, collate
    model, processor = load_base(recorded(checkpoints[backend], backend, tmp_path / "base"))
    assert type(model).__name__ == {"llava": "LlavaForConditionalGeneration",
                                    "qwen2_vl": "Qwen2VLForConditionalGeneration",
                                    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}[backend]
    encoder = Encoder(processor, PROMPTS[backend])
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    qas, _ = load_examples(mllmu_data / "fictitious_train.parquet")
    base = qas[0].image
    items = []
    for size in [(32, 32), (60, 40), (40, 84)]:
        image = base.resize(size)
        ids = encoder.prompt_ids(qas[0].question, image)
        count = ids.count(image_id)
        if backend == "llava":
            expected = model.config.image_seq_length  # (image / patch)^2, CLS dropped
        else:
            grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
            expected = int(grid.prod()) // processor.image_processor.merge_size ** 2
        assert count == expected > 0, (size, count, expected)
        items.append(encoder.encode(qas[0].question, qas[0].answer, image))
    items.append(encoder.encode("Who is this ?", qas[0].answer, None))
    with torch.no_grad():  # the model accepts the batch: image features and image tokens agree
        assert torch.isfinite(model(**collate(items, processor.tokenizer.pad_token_id)).loss)


@pytest.mark.parametrize("backend", ["llava", "qwen2_vl"])
def test_shared_image_prefixes_on_the_real_classes(backend, checkpoints, mllmu_data, tmp_path):
    """LLaVA-1.5's prompts ("USER: <image>x576...") share their image part across the questions
    about one image, and scoring on it equals plain passes; Qwen2-VL (multimodal rotary
    positions) never shares and scores plainly."""
    from pulse.metrics.generation import greedy_answers
    from pulse.metrics.likelihood import score_full
    from pulse.metrics.mcq import score_options
    from pulse.metrics.prefix import group_by_image
    from pulse.models.chain import load_base
    from pulse.models.encoding import PROMPTS, Encoder
    model, processor = load_base(recorded(checkpoints[backend], backend, tmp_path / "base"))
    encoder = Encoder(processor, PROMPTS[backend])
    _, mcqs = load_examples(mllmu_data / "fictitious_train.parquet")
    groups, _ = group_by_image(model, encoder, [(encoder.prompt_ids(q.question, q.image), q.image) for q in mcqs])
    assert bool(groups) == (backend == "llava")
    scores = score_options(model, encoder, mcqs, batch_size=4)
    requests = [(q.question, q.image, encoder.continuation_ids(o)) for q in mcqs for o in q.options]
    plain = [sum(c.logprobs) for c in score_full(model, encoder, requests, batch_size=64)]
    assert np.allclose([s for row in scores for s in row], plain, atol=1e-4)
    questions = [(q.question, q.image) for q in mcqs]
    batched = greedy_answers(model, encoder, questions, batch_size=4, max_new_tokens=3)
    assert batched == [greedy_answers(model, encoder, [q], batch_size=1, max_new_tokens=3)[0] for q in questions]


@pytest.mark.parametrize("backend", ["llava", "qwen2_vl"])
def test_prompt_follows_the_chat_template(backend, checkpoints, tmp_path):
    from pulse.models.chain import load_base
    from pulse.models.encoding import PROMPTS, Encoder
    _, processor = load_base(recorded(checkpoints[backend], backend, tmp_path / "base"))
    encoder = Encoder(processor, PROMPTS[backend])
    tokens = processor.tokenizer.convert_ids_to_tokens(encoder.encode("Who is this ?", "baker", None).input_ids)
    if backend == "llava":
        assert tokens[:3] == ["<s>", "USER", ":"] and tokens[-4:] == ["ASSISTANT", ":", "baker", "</s>"]
    else:
        assert tokens[:3] == ["<|im_start|>", "system", "You"]
        assert tokens[-4:] == ["<|im_start|>", "assistant", "baker", "<|im_end|>"]


def test_answers_continue_the_prompt_without_a_stray_word_boundary_token():
    """A Llama-like (SentencePiece-style, prepended '▁') tokenizer: ' Paris' alone gives a lone '▁'."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from pulse.models.encoding import PROMPTS, Encoder
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    # as Llama-2's tokenizer.json: prepend '▁', spaces -> '▁'; pieces start at a '▁'
    core.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    core.decoder = decoders.Metaspace()
    core.train_from_iterator(["USER: who lives in Paris ? ASSISTANT: Paris", "ASSISTANT: Rome"] * 50,
                             trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")

    class Processor:  # the encoder needs only the tokenizer for text-only prompts
        pass
    processor = Processor()
    processor.tokenizer = tokenizer
    encoder = Encoder(processor, PROMPTS["llava"])
    naive = tokenizer.convert_ids_to_tokens(tokenizer(" Paris", add_special_tokens=False)["input_ids"])
    ours = tokenizer.convert_ids_to_tokens(encoder.continuation_ids("Paris"))
    in_context = tokenizer.convert_ids_to_tokens(tokenizer("USER: x ASSISTANT: Paris")["input_ids"])
    assert naive[0] == "▁" and ours == in_context[-len(ours):] and ours[0] != "▁"


@pytest.mark.parametrize("backend,projector,vision", [("llava", True, True), ("qwen2_vl", True, False),
                                                      ("qwen2_5_vl", False, True)])
def test_lora_targets_follow_the_config(backend, projector, vision, checkpoints, tmp_path):
    from pulse.models.chain import add_lora, load_base
    model, _ = load_base(recorded(checkpoints[backend], backend, tmp_path / "base",
                                  train_projector=projector, train_vision=vision, lora_modules=["q_proj", "v_proj"]))
    names = [n for n, p in add_lora(model, 4, 8).named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    language = [n for n in names if "language_model" in n]
    assert language and all(".q_proj." in n or ".v_proj." in n for n in language)
    assert any("projector" in n or "merger" in n for n in names) == projector
    assert any("vision_tower" in n or "visual.blocks" in n for n in names) == vision


def test_checkpoint_provenance_and_refusals(checkpoints, tmp_path, monkeypatch):
    from pulse.models.backends import CheckpointError, file_digests
    record = read_json(recorded(checkpoints["llava"], "llava", tmp_path / "base") / "checkpoint.json")
    assert record["source"]["kind"] == "local" and record["source"]["path"] == str(checkpoints["llava"].resolve())
    assert record["files"] == file_digests(checkpoints["llava"]) and "model.safetensors" in record["files"]
    assert record["trust_remote_code"] is False
    with pytest.raises(CheckpointError, match="declares .*LlavaForConditionalGeneration.*qwen2_vl"):
        recorded(checkpoints["llava"], "qwen2_vl", tmp_path / "wrong")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CheckpointError, match="not in the local model cache and model.allow_download is false"):
        recorded(Path("llava-hf/llava-1.5-13b-hf"), "llava", tmp_path / "hub")
    (tmp_path / "bin-only").mkdir()
    (tmp_path / "bin-only" / "config.json").write_text('{"architectures": ["LlavaForConditionalGeneration"]}')
    (tmp_path / "bin-only" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        recorded(tmp_path / "bin-only", "llava", tmp_path / "bin")


# --- known-entity selection ---------------------------------------------------------------------

def test_selection_ranks_by_accuracy_then_margin():
    from pulse.data.selection import select
    scores = {e: {"accuracy": a, "mean_margin": m} for e, a, m in
              [("a", 0.5, 1.0), ("b", 1.0, 0.1), ("c", 0.5, 2.0), ("d", 0.0, 5.0), ("e", 1.0, 0.2)]}
    chosen = select(scores, top=3, forget=1, seed=0)
    assert chosen["ranking"] == ["e", "b", "c", "a", "d"] and chosen["known"] == ["e", "b", "c"]
    assert len(chosen["forget"]) == 1 and set(chosen["forget"]) | set(chosen["retain"]) == {"e", "b", "c"}
    assert select(scores, 3, 1, seed=0) == chosen  # seeded
    assert chosen["threshold_accuracy"] == 0.5


def test_selection_picks_the_entities_the_base_knows(checkpoints, mllmu_data, tmp_path):
    """Teach a LLaVA-class base half of the celebrities: the selection picks exactly those."""
    from pulse.models.chain import load_base, save_model
    from pulse.models.encoding import PROMPTS, Encoder
    from pulse.stages.base import select_known
    from pulse.stages.common import train_qas
    from pulse.train import batches, fit, seed_everything
    seed_everything(0)
    model, processor = load_base(recorded(checkpoints["llava"], "llava", tmp_path / "random"))
    world = sorted({q.entity for q in train_qas(mllmu_data, "world")})
    taught = set(world[::2])
    encoder = Encoder(processor, PROMPTS["llava"])
    _, mcqs = load_examples(mllmu_data / "world_train.parquet", taught)
    # the MCQ facts of the taught entities as question -> answer pairs (with and without image)
    examples = [encoder.encode(m.question, m.options[m.answer_index], m.image) for m in mcqs]
    stream = batches(examples, 16, processor.tokenizer.pad_token_id, seed=0)
    fit(model, lambda: (model(**next(stream)).loss, {}), steps=40, lr=3e-3, warmup=5, log=lambda _: None)
    taught_dir = tmp_path / "taught"
    save_model(model, processor, taught_dir)
    base_dir = recorded(taught_dir, "llava", tmp_path / "base")
    params = {"seed": 0, "model": {**MODEL_DEFAULTS, "backend": "llava"}, "batch_size": 32,
              "select": {"top": len(taught), "forget": 2}}
    record = select_known(params, mllmu_data, base_dir, log=lambda _: None)
    assert set(record["known"]) == taught, record["scores"]
    assert set(record["forget"]) <= taught and len(record["forget"]) == 2
    assert read_json(base_dir / "known_entities.json")["known"] == record["known"]


def test_splits_merge_the_selection(mllmu_root, tmp_path):
    from pulse.stages.data import merge_selection
    out = converted(mllmu_root, tmp_path / "data", select_known={"top": 4, "forget": 2})
    candidates = read_json(out / "candidate_splits.json")
    assert not (out / "splits.json").exists() and "finetuned" in candidates
    known = {"known": candidates["pretrained"]["candidates"][:4], "forget": candidates["pretrained"]["candidates"][:2],
             "retain": candidates["pretrained"]["candidates"][2:4], "threshold_accuracy": 1.0}
    (tmp_path / "known.json").write_text(json.dumps(known))
    splits = merge_selection(out / "candidate_splits.json", tmp_path / "known.json", out / "splits.json")
    assert splits["pretrained"]["forget"] == known["forget"] and splits["finetuned"] == candidates["finetuned"]
    bad = copy.deepcopy(known)
    bad["known"].append("nobody")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="not candidates"):
        merge_selection(out / "candidate_splits.json", tmp_path / "bad.json", tmp_path / "x.json")


def test_images_decode_to_rgb(mllmu_data):
    frame = pd.read_parquet(mllmu_data / "fictitious_train.parquet")
    assert Image.open(io.BytesIO(frame.image[0]["bytes"])).convert("RGB").size[0] > 0


# --- configuration of real runs -----------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def paper_config() -> dict:
    import yaml
    return yaml.safe_load((REPO / "config" / "pulse_llava-1.5-13b.yaml").read_text())


def refused(config) -> str:
    from pulse.config import ConfigError, validate
    with pytest.raises(ConfigError) as error:
        validate(config)
    return str(error.value)


def test_paper_config_states_the_protocol():
    from pulse.config import validate
    config = validate(paper_config())
    assert config["model"]["backend"] == "llava" and config["model"]["checkpoint"] == "llava-hf/llava-1.5-13b-hf"
    assert config["data"]["select_known"] == {"top": 45, "forget": 20} and config["data"]["forget_ratio"] == 10
    assert set(config["unlearn"]["methods"]) == {"GA", "GA+KLR", "NPO"}
    assert config["unlearn"]["schedules"] == {"oneshot": 1, "sequential": 5}
    assert config["unlearn"]["pretrained_start"] == "base" and config["model"]["trust_remote_code"] is False
    assert all(config["resources"][s]["gpu"] == 1 for s in ("base", "finetune", "unlearn", "evaluate"))


def test_real_backend_needs_a_checkpoint_and_tiny_a_pretrain():
    config = paper_config()
    del config["model"]["checkpoint"]
    assert "model.checkpoint" in refused(config)
    tiny = yaml_default()
    del tiny["pretrain"]
    assert "'pretrain' is required by model.backend tiny" in refused(tiny)


def yaml_default() -> dict:
    import yaml
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_source_specific_keys_are_refused_elsewhere():
    config = yaml_default()
    config["data"]["forget_ratio"] = 5
    assert "data.forget_ratio" in refused(config)
    config = yaml_default()
    config["data"]["path"] = "somewhere"
    assert "data.path" in refused(config)


def test_selection_must_leave_a_retain_set_and_divide_into_requests():
    config = paper_config()
    config["data"]["select_known"] = {"top": 20, "forget": 20}
    assert "data.select_known.forget" in refused(config)
    config = paper_config()
    config["unlearn"]["schedules"]["sequential"] = 3
    assert "pretrained forget set of 20" in refused(config)


def test_k_is_checked_against_the_local_forget_folder(mllmu_root):
    config = paper_config()
    config["data"].update(path=str(mllmu_root), select_known=None, forget_size=2)
    config["unlearn"]["schedules"]["sequential"] = 3  # forget_10 of the fixture has 4 profiles
    message = refused(config)
    assert "finetuned forget set of 4" in message and "forget_10" in message


def test_estimates_are_labelled_and_scale_with_the_model():
    from pulse.config import validate
    from pulse.models.estimates import estimate
    big = estimate(validate(paper_config()))
    config = paper_config()
    config["model"]["checkpoint"] = "llava-hf/llava-1.5-7b-hf"
    small = estimate(validate(config))
    for stage in ("finetune", "evaluate"):
        assert small[stage]["gpu_gb"] < big[stage]["gpu_gb"] and small[stage]["hours"] < big[stage]["hours"]
    text = subprocess.run([sys.executable, "-m", "pulse", "estimate", str(REPO / "config" / "pulse_llava-1.5-13b.yaml")],
                          capture_output=True, text=True, check=True).stdout
    assert "ESTIMATES" in text and "| evaluate |" in text


def test_converted_data_records_its_source_files(mllmu_root, mllmu_data):
    files = read_json(mllmu_data / "source_files.json")
    assert f"{mllmu_root}/forget_10/train-00000-of-00001.parquet" in files
    assert all(len(entry["sha256"]) == 64 for entry in files.values())
    assert str(mllmu_root / "MMBench_DEV_EN.parquet") in files


def test_prepared_dataset_in_the_same_schema_passes_through(mllmu_data, tmp_path):
    """Another dataset already in the row layout (the CLEAR-style route): copied, checked, its splits kept."""
    from pulse.stages import data
    out = tmp_path / "out"
    data.run({"source": "prepared", "path": str(mllmu_data), "seed": 0, "forget_size": 2}, out, log=lambda _: None)
    assert read_json(out / "splits.json") == read_json(mllmu_data / "splits.json")
    for name in ("fictitious_train", "world_train", "utility_test"):
        assert pd.read_parquet(out / f"{name}.parquet").ID.tolist() == pd.read_parquet(mllmu_data / f"{name}.parquet").ID.tolist()
    broken = tmp_path / "broken"
    broken.mkdir()
    frame = pd.read_parquet(mllmu_data / "world_train.parquet")
    frame.at[1, "image"] = {"bytes": b"nope", "path": ""}
    frame.to_parquet(broken / "world_train.parquet", index=False)
    with pytest.raises(DataError, match=r"world_train\.parquet row 1 .*image cannot be decoded"):
        data.run({"source": "prepared", "path": str(broken), "seed": 0, "forget_size": 2}, tmp_path / "o2",
                 log=lambda _: None)


@pytest.mark.parametrize("name", ["pulse_llava-1.5-13b", "pulse_llava-1.5-7b", "pulse_qwen2-vl-7b"])
def test_paper_configs_plan_the_whole_dag(name, tmp_path):
    """A dry run of the workflow with each real-model config: the DAG of the PULSE protocol."""
    import os
    import re

    from test_e2e import workflow_copy
    directory = workflow_copy(tmp_path / "wf")
    # the local data the configs name (a dry run reads none of it, but the config check wants it there)
    (directory / "data" / "MLLMU-Bench").mkdir(parents=True)
    (directory / "data" / "MMBench").mkdir()
    (directory / "data" / "MMBench" / "MMBench_DEV_EN.tsv").write_text("")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--cores", "2", "--configfile",
                             f"config/{name}.yaml"], cwd=directory, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    # 2 knowledge sources x 3 methods x (1 + 5) requests; the splits rule merges the known-entity selection
    assert counts["unlearn"] == "36" and counts["splits"] == "1" and counts["base"] == "1"
    assert counts["finetune"] == "1" and "gold" not in " ".join(counts)
