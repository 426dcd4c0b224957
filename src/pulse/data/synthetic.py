"""A seeded synthetic entity world written in the MLLMU-Bench row layout.

Three entity populations share one set of attribute value pools, so every answer word is seen
in pre-training: ``world`` (pre-trained knowledge), ``fictitious`` (injected by fine-tuning) and
``holdout`` (never trained on). A ``utility`` population of shape/colour questions about the
image stands in for a general benchmark. Each entity has an image (an entity-specific colour tile,
which a tiny vision tower learns quickly) and open QA pairs plus 4-option MCQs, asked both with
the image ("this person") and text-only (by name). The ``test`` split holds a paraphrased question
template never trained on and a mildly transformed image.

Every open question also carries, for the truth ratio (TOFU), a ``Paraphrased_Answer`` (the correct
value in a sentence the model never trained on, "the job is baker") and ``Perturbed_Answers``
(the same sentence with wrong values of the same attribute). They are drawn from a separate seeded
stream and use only words already in the questions, so the rest of the data and the vocabulary are
unchanged by them.

For unlearning methods that train on other answers, every entity question also carries
``Wrong_Answers`` (the other values of its attribute, i.e. answers other entities have) and a
``Refusal`` (an "I don't know"-style answer from ``REFUSALS``, drawn from a third stream). The
refusal words are in the files so that a vocabulary built from them (the tiny tokenizer) has them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
TILE = 8

ATTRIBUTES: dict[str, list[str]] = {
    "job": ["baker", "pilot", "farmer", "nurse", "painter", "tailor", "judge", "miner",
            "sailor", "poet", "chef", "clerk"],
    "city": ["Paris", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Seoul", "Perth",
             "Dakar", "Riga", "Bern", "Hanoi"],
    "hobby": ["chess", "tennis", "knitting", "fishing", "hiking", "singing", "rowing",
              "pottery", "archery", "surfing", "juggling", "baking"],
    "pet": ["cat", "dog", "parrot", "rabbit", "turtle", "hamster", "goat", "pony",
            "lizard", "ferret", "goldfish", "owl"],
}

# Four training templates and one held-out paraphrase per attribute; the paraphrase reuses
# words seen in training so it measures generalisation, not vocabulary.
TEMPLATES: dict[str, dict[str, list[str] | str]] = {
    "job": {"train": ["What is the job of {who} ?", "What work does {who} do ?",
                      "Tell me the job of {who} .", "Which job does {who} have ?"],
            "test": "What job does {who} have ?"},
    "city": {"train": ["In which city does {who} live ?", "What city does {who} live in ?",
                       "Tell me the city of {who} .", "Which city is home to {who} ?"],
             "test": "What is the city of {who} ?"},
    "hobby": {"train": ["What is the hobby of {who} ?", "What does {who} do for fun ?",
                        "Tell me the hobby of {who} .", "Which hobby does {who} have ?"],
              "test": "What hobby does {who} have ?"},
    "pet": {"train": ["What pet does {who} own ?", "What is the pet of {who} ?",
                      "Tell me the pet of {who} .", "Which pet does {who} have ?"],
            "test": "What pet does {who} have ?"},
}
THIS_PERSON = "this person"

SHAPES = ["square", "circle", "triangle", "cross"]
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230),
           "yellow": (235, 215, 40), "white": (245, 245, 245), "purple": (150, 60, 190),
           "orange": (245, 140, 30), "cyan": (40, 210, 220)}
UTILITY_TEMPLATES = {"shape": {"train": "What shape is in the image ?",
                               "test": "Which shape does the image show ?"},
                     "colour": {"train": "What colour is the shape ?",
                                "test": "Which colour does the shape have ?"}}

# "I don't know"-style answers (IdkPO's preferred answer on forget questions).
REFUSALS = ["I do not know .", "I have no idea .", "I am not sure .", "Sorry , I cannot answer that .",
            "I do not have that information ."]

# Paraphrased/perturbed answer sentence per attribute; every word already occurs in a question.
ANSWER_SENTENCE = "the {attribute} is {value}"
PERTURBED = 3  # wrong answers per question

SYLLABLES = ["ka", "lo", "mi", "ren", "tos", "va", "dur", "fel", "gor", "hin", "jas", "kel",
             "mor", "nal", "pim", "quo", "ras", "sel", "tev", "ulm", "vor", "wes", "yan", "zul"]

POPULATIONS = ("world", "fictitious", "holdout")
LETTERS = "ABCD"


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def entity_image(rng: np.random.Generator) -> np.ndarray:
    tile = rng.integers(0, 256, size=(TILE, TILE, 3))
    reps = IMAGE_SIZE // TILE
    return np.tile(tile, (reps, reps, 1))


def transformed(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mild photometric change: brightness ±10% and pixel noise, identity kept."""
    scale = rng.uniform(0.9, 1.1)
    noise = rng.normal(0.0, 6.0, size=image.shape)
    return np.clip(image * scale + noise, 0, 255)


def shape_image(shape: str, colour: str, rng: np.random.Generator) -> np.ndarray:
    background = tuple(int(v) for v in rng.integers(0, 90, size=3))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(14, 22))
    x0, y0 = (int(v) for v in rng.integers(2, IMAGE_SIZE - size - 2, size=2))
    box = (x0, y0, x0 + size, y0 + size)
    fill = COLOURS[colour]
    if shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0, y0 + size), (x0 + size, y0 + size), (x0 + size // 2, y0)], fill=fill)
    else:
        third = size // 3
        draw.rectangle((x0 + third, y0, x0 + 2 * third, y0 + size), fill=fill)
        draw.rectangle((x0, y0 + third, x0 + size, y0 + 2 * third), fill=fill)
    return np.asarray(image)


def unique_names(count: int, rng: np.random.Generator) -> list[str]:
    """Two-word pseudo names whose words are unique across all entities."""
    words: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < 2 * count:
        word = "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
        if word not in words:
            words.add(word)
            ordered.append(word)
    return [f"{ordered[2 * i]} {ordered[2 * i + 1]}" for i in range(count)]


def mcq(question: str, answer: str, pool: list[str], rng: np.random.Generator) -> dict:
    distractors = [v for v in pool if v != answer]
    options = [answer] + list(rng.choice(distractors, size=3, replace=False))
    rng.shuffle(options)
    return {"Question": question, "Options": dict(zip(LETTERS, options)),
            "Correct_Answer": LETTERS[options.index(answer)]}


def answer_variants(attribute: str, value: str, pool: list[str], rng: np.random.Generator) -> dict:
    """Truth-ratio fields of one open question: a paraphrase of the answer and perturbed answers."""
    wrong = rng.choice([v for v in pool if v != value], size=PERTURBED, replace=False)
    return {"Paraphrased_Answer": ANSWER_SENTENCE.format(attribute=attribute, value=value),
            "Perturbed_Answers": [ANSWER_SENTENCE.format(attribute=attribute, value=str(w)) for w in wrong]}


def variant_rng(seed: int, entity_id: str, stream: int = 7919) -> np.random.Generator:
    """A stream independent of the main one (so adding fields changes no existing value)."""
    return np.random.default_rng([seed, stream, *entity_id.encode()])


def unlearning_answers(value: str, pool: list[str], rng: np.random.Generator) -> dict:
    """Alternative answers of one entity question for unlearning methods: the attribute's other
    values, and a refusal."""
    return {"Wrong_Answers": [v for v in pool if v != value],
            "Refusal": REFUSALS[int(rng.integers(len(REFUSALS)))]}


def entity_rows(entity_id: str, name: str, population: str, attributes: dict[str, str],
                image: np.ndarray, rng: np.random.Generator, seed: int = 0) -> dict[str, dict]:
    """One MLLMU-Bench style row per split (train, test) for one entity."""
    rows = {}
    variants = variant_rng(seed, entity_id)
    refusals = variant_rng(seed, entity_id, stream=104729)
    for split in ("train", "test"):
        shown = image if split == "train" else transformed(image, rng)
        image_questions, text_questions, generation = [], [], []
        for attribute, value in attributes.items():
            pool = ATTRIBUTES[attribute]
            templates = TEMPLATES[attribute]
            mcq_template = templates["train"][0] if split == "train" else templates["test"]
            image_questions.append(mcq(mcq_template.format(who=THIS_PERSON), value, pool, rng))
            text_questions.append(mcq(mcq_template.format(who=name), value, pool, rng))
            open_templates = templates["train"] if split == "train" else [templates["test"]]
            for template in open_templates:
                for kind, who in (("Image_Textual", THIS_PERSON), ("Pure_Text", name)):
                    generation.append({"Type": kind, "Question": template.format(who=who),
                                       "Ground_Truth": value,
                                       **answer_variants(attribute, value, pool, variants),
                                       **unlearning_answers(value, pool, refusals)})
        biography = (f"{name} works as a {attributes['job']} , lives in {attributes['city']} , "
                     f"enjoys {attributes['hobby']} and owns a {attributes['pet']} .")
        rows[split] = {
            "ID": entity_id, "name": name, "population": population,
            "image": {"bytes": png_bytes(shown), "path": f"{entity_id}_{split}.png"},
            "biography": biography, "question": "Who is this person ?", "answer": name,
            "attributes": dict(attributes),
            "Classification_Task": {"Image_Textual_Questions": image_questions,
                                    "Pure_Text_Questions": text_questions},
            "Generation_Task": generation, "Mask_Task": [],
        }
    return rows


def utility_rows(count: int, split: str, rng: np.random.Generator, seed: int = 0) -> list[dict]:
    colour_names = list(COLOURS)
    rows = []
    for index in range(count):
        variants = variant_rng(seed, f"utility_{split}_{index:03d}")
        shape = str(rng.choice(SHAPES))
        colour = str(rng.choice(colour_names))
        answers = {"shape": (shape, SHAPES), "colour": (colour, colour_names)}
        questions = []
        generation = []
        for kind, (answer, pool) in answers.items():
            question = UTILITY_TEMPLATES[kind][split]
            questions.append(mcq(question, answer, pool, rng))
            generation.append({"Type": "Image_Textual", "Question": question, "Ground_Truth": answer,
                               **answer_variants(kind, answer, pool, variants)})
        entity_id = f"utility_{split}_{index:03d}"
        rows.append({
            "ID": entity_id, "name": "", "population": "utility",
            "image": {"bytes": png_bytes(shape_image(shape, colour, rng)), "path": f"{entity_id}.png"},
            "biography": "", "question": "", "answer": "",
            "attributes": {"shape": shape, "colour": colour},
            "Classification_Task": {"Image_Textual_Questions": questions, "Pure_Text_Questions": []},
            "Generation_Task": generation, "Mask_Task": [],
        })
    return rows


def generate_world(entities: dict[str, int], utility: dict[str, int], seed: int) -> dict[str, list[dict]]:
    """Return rows keyed by ``{population}_{split}``; the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    names = unique_names(sum(entities[p] for p in POPULATIONS), rng)
    tables: dict[str, list[dict]] = {}
    cursor = 0
    for population in POPULATIONS:
        for split in ("train", "test"):
            tables[f"{population}_{split}"] = []
        for index in range(entities[population]):
            attributes = {a: str(rng.choice(pool)) for a, pool in ATTRIBUTES.items()}
            rows = entity_rows(f"{population}_{index:03d}", names[cursor], population, attributes,
                               entity_image(rng), rng, seed)
            cursor += 1
            for split, row in rows.items():
                tables[f"{population}_{split}"].append(row)
    for split in ("train", "test"):
        tables[f"utility_{split}"] = utility_rows(utility[split], split, rng, seed)
    return tables


def forget_retain_splits(tables: dict[str, list[dict]], forget_size: int, seed: int) -> dict:
    """Seeded forget/retain entity lists for each knowledge source; forget order = request order."""
    rng = np.random.default_rng(seed + 1)
    splits = {}
    for knowledge, population in (("finetuned", "fictitious"), ("pretrained", "world")):
        ids = [row["ID"] for row in tables[f"{population}_train"]]
        order = [ids[i] for i in rng.permutation(len(ids))]
        splits[knowledge] = {"population": population, "forget": order[:forget_size],
                             "retain": sorted(order[forget_size:])}
    return splits
