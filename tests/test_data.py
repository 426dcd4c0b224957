"""The synthetic world: deterministic, in the MLLMU-Bench layout, splits well formed."""

import pandas as pd

from pulse.data.records import MODALITIES, load_examples
from pulse.data.synthetic import POPULATIONS, forget_retain_splits, generate_world
from pulse.io import read_json

ENTITIES = {"world": 5, "fictitious": 5, "holdout": 2}
UTILITY = {"train": 4, "test": 2}


def test_same_seed_same_world_and_other_seed_differs():
    first = generate_world(ENTITIES, UTILITY, seed=3)
    again = generate_world(ENTITIES, UTILITY, seed=3)
    other = generate_world(ENTITIES, UTILITY, seed=4)
    assert first == again
    assert first["world_train"] != other["world_train"]


def test_rows_follow_the_mllmu_bench_layout(data_dir):
    frame = pd.read_parquet(data_dir / "fictitious_train.parquet")
    for column in ("ID", "image", "biography", "Classification_Task", "Generation_Task", "Mask_Task"):
        assert column in frame.columns
    row = frame.iloc[0]
    assert set(row["image"]) == {"bytes", "path"}
    task = row["Classification_Task"]
    for key in ("Image_Textual_Questions", "Pure_Text_Questions"):
        question = task[key][0]
        assert sorted(question["Options"]) == ["A", "B", "C", "D"]
        assert question["Correct_Answer"] in "ABCD"
    assert {item["Type"] for item in row["Generation_Task"]} == set(MODALITIES)


def test_every_entity_is_asked_with_image_and_by_name(data_dir):
    qas, mcqs = load_examples(data_dir / "world_train.parquet")
    name = pd.read_parquet(data_dir / "world_train.parquet").set_index("ID")["name"]
    for item in mcqs:
        if item.modality == "text":
            assert name[item.entity] in item.question and item.image is None
        else:
            assert "this person" in item.question and item.image is not None
        assert item.options[item.answer_index] in {q.answer for q in qas if q.entity == item.entity}


def test_test_split_paraphrases_questions_and_transforms_images(data_dir):
    train_qa, _ = load_examples(data_dir / "world_train.parquet")
    test_qa, _ = load_examples(data_dir / "world_test.parquet")
    assert not {q.question for q in test_qa} & {q.question for q in train_qa}
    train_image = next(q.image for q in train_qa if q.image is not None)
    test_image = next(q.image for q in test_qa if q.image is not None and q.entity == train_qa[0].entity)
    assert train_image.size == test_image.size and train_image.tobytes() != test_image.tobytes()


def test_forget_and_retain_are_disjoint_and_cover_the_population():
    tables = generate_world(ENTITIES, UTILITY, seed=0)
    splits = forget_retain_splits(tables, forget_size=2, seed=0)
    for knowledge, population in (("finetuned", "fictitious"), ("pretrained", "world")):
        forget, retain = set(splits[knowledge]["forget"]), set(splits[knowledge]["retain"])
        assert len(forget) == 2 and not forget & retain
        assert forget | retain == {row["ID"] for row in tables[f"{population}_train"]}
    assert set(POPULATIONS) == {"world", "fictitious", "holdout"}


def test_stage_writes_every_file(data_dir):
    names = {p.name for p in data_dir.iterdir()}
    for population in ("world", "fictitious", "holdout", "utility"):
        for split in ("train", "test"):
            assert f"{population}_{split}.parquet" in names
    assert read_json(data_dir / "splits.json")["finetuned"]["population"] == "fictitious"


def test_tiny_vocabulary_covers_prompts_and_data(tiny, data_dir):
    """No word of any prompt, question or answer maps to the unknown token."""
    from pulse.models.encoding import PROMPTS, Encoder
    _, processor = tiny
    encoder = Encoder(processor, PROMPTS["tiny"])
    unk = processor.tokenizer.unk_token_id
    for population in ("world", "fictitious", "utility"):
        qas, _ = load_examples(data_dir / f"{population}_train.parquet")
        for qa in qas[:20]:
            assert unk not in encoder.encode_qa(qa).input_ids, qa


def test_open_questions_carry_wrong_answers_and_a_refusal(data_dir):
    """Alternative answers for unlearning methods: other values of the same attribute, and an
    "I don't know"-style refusal from the fixed templates."""
    from pulse.data.synthetic import ATTRIBUTES, REFUSALS
    qas, _ = load_examples(data_dir / "fictitious_train.parquet")
    for qa in qas:
        pool = next(values for values in ATTRIBUTES.values() if qa.answer in values)
        assert set(qa.wrong) == set(pool) - {qa.answer}
        assert qa.refusal in REFUSALS
    assert len({qa.refusal for qa in qas}) > 1


def test_alternative_answers_do_not_change_the_world():
    """The refusal draws use their own generator: questions and answers are as before."""
    tables = generate_world(ENTITIES, UTILITY, seed=3)
    row = tables["world_train"][0]
    assert {"Wrong_Answers", "Refusal"} <= set(row["Generation_Task"][0])
    stripped = [{k: item[k] for k in ("Type", "Question", "Ground_Truth")} for item in row["Generation_Task"]]
    assert stripped[:2] == [{"Type": "Image_Textual", "Question": "What is the job of this person ?",
                             "Ground_Truth": row["attributes"]["job"]},
                            {"Type": "Pure_Text", "Question": f"What is the job of {row['name']} ?",
                             "Ground_Truth": row["attributes"]["job"]}]


def test_tiny_vocabulary_covers_the_refusals(tiny):
    from pulse.data.synthetic import REFUSALS
    _, processor = tiny
    unk = processor.tokenizer.unk_token_id
    for refusal in REFUSALS:
        assert unk not in processor.tokenizer(refusal)["input_ids"], refusal
