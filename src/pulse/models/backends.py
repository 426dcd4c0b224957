"""Model back-ends: which class, processor, prompt template and LoRA targets a model family uses,
where a checkpoint comes from, and how every stage loads it.

A base directory (``results/{run}/base``) always holds ``checkpoint.json``. For the ``tiny``
back-end the weights sit next to it (pre-trained here); for a real checkpoint it records where the
weights are (a local directory, or a snapshot of the model cache), the resolved revision and the
digests of its files, so that every later stage loads exactly the recorded snapshot. Weights load
from safetensors only and ``trust_remote_code`` stays off unless the config turns it on.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pulse.io import read_json, write_json

CHECKPOINT_FILE = "checkpoint.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LM_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Backend:
    """A model family: its transformers class, processor kind and the module names LoRA targets."""
    name: str
    model_class: str
    processor: str          # "llava": the checkpoint's LlavaProcessor; "qwen": image processor + tokenizer
    projector: str          # regex (module path) of the vision-language projector's linear layers
    vision: str             # regex of the vision tower's linear layers
    description: str


BACKENDS = {
    "tiny": Backend("tiny", "LlavaForConditionalGeneration", "llava",
                    r".*multi_modal_projector\.linear_[12]",
                    r".*vision_tower.*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)",
                    "tiny LLaVA built and pre-trained by the workflow (CPU)"),
    "llava": Backend("llava", "LlavaForConditionalGeneration", "llava",
                     r".*multi_modal_projector\.linear_[12]",
                     r".*vision_tower.*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)",
                     "LLaVA-1.5 in the llava-hf layout (e.g. llava-hf/llava-1.5-7b-hf, -13b-hf)"),
    "qwen2_vl": Backend("qwen2_vl", "Qwen2VLForConditionalGeneration", "qwen",
                        r".*visual\.merger\.mlp\.[02]",
                        r".*visual\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)",
                        "Qwen2-VL (e.g. Qwen/Qwen2-VL-7B-Instruct)"),
    "qwen2_5_vl": Backend("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "qwen",
                          r".*visual\.merger\.mlp\.[02]",
                          r".*visual\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.(gate|up|down)_proj)",
                          "Qwen2.5-VL (e.g. Qwen/Qwen2.5-VL-7B-Instruct)"),
}


class CheckpointError(FileNotFoundError):
    """A checkpoint that cannot be found or loaded as configured (message names what and where)."""


def lora_target(backend: str, modules=LM_LINEAR, projector: bool = False, vision: bool = False) -> str:
    """Regex of the modules a LoRA adapter trains: the language model's linear layers, plus the
    projector and/or the vision tower when the config says they are trained."""
    spec = BACKENDS[backend]
    parts = [r".*language_model.*\.(" + "|".join(modules) + ")"]
    if projector:
        parts.append(spec.projector)
    if vision:
        parts.append(spec.vision)
    return parts[0] if len(parts) == 1 else "(" + ")|(".join(parts) + ")"


def training_policy(model_config: dict) -> dict:
    """What the training stages do with this model (stored in checkpoint.json)."""
    backend = model_config["backend"]
    return {"lora_target": lora_target(backend, tuple(model_config["lora_modules"]),
                                       model_config["train_projector"], model_config["train_vision"]),
            "train_projector": model_config["train_projector"],
            "train_vision": model_config["train_vision"],
            "gradient_checkpointing": model_config["gradient_checkpointing"]}


# --- where a checkpoint comes from -------------------------------------------------------------

def sha256_of(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_digests(directory: Path, hash_weights: bool = True) -> dict:
    """Size and sha256 of every file of a checkpoint directory (weights: size only if not hashed)."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".git" not in p.parts):
        resolved = path.resolve()  # model-cache snapshots are symlinks to blobs
        entry = {"bytes": resolved.stat().st_size}
        if hash_weights or resolved.stat().st_size < 64 << 20:
            entry["sha256"] = sha256_of(resolved)
        files[str(path.relative_to(directory))] = entry
    return files


def _git_head(directory: Path) -> str | None:
    head = directory / ".git" / "HEAD"
    if not head.exists():
        return None
    ref = head.read_text().strip()
    if ref.startswith("ref: "):
        target = directory / ".git" / ref[5:]
        return target.read_text().strip() if target.exists() else None
    return ref


def resolve_checkpoint(name: str, revision: str | None = None, allow_download: bool = False) -> dict:
    """Where the weights of ``name`` (a local directory or a model-hub id) are on this machine.

    A hub id is looked up in the local model cache only, unless ``allow_download`` (the config's
    ``model.allow_download``) permits fetching it. Returns the source record of checkpoint.json.
    """
    local = Path(name).expanduser()
    if local.is_dir():
        path = local.resolve()
        # A snapshot directory of the model cache is named by its commit.
        commit = path.name if path.parent.name == "snapshots" else _git_head(path)
        return {"kind": "local", "name": name, "revision": revision, "commit": commit, "path": str(path)}
    if local.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise CheckpointError(f"model.checkpoint '{name}': no such directory (and not a model-hub id "
                              "of the form owner/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        path = Path(snapshot_download(name, revision=revision, local_files_only=not allow_download,
                                      allow_patterns=patterns))
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"model.checkpoint '{name}' (revision {revision or 'main'}) is not in the local model cache "
            "and model.allow_download is false; download it first (e.g. `hf download "
            f"{name}`) or give a local directory") from None
    return {"kind": "hub", "name": name, "revision": revision, "commit": path.name, "path": str(path)}


def record_checkpoint(model_config: dict, out_dir: str | Path, log=print) -> dict:
    """Resolve the configured checkpoint and write its provenance + training policy to checkpoint.json."""
    out_dir = Path(out_dir)
    backend = BACKENDS[model_config["backend"]]
    source = resolve_checkpoint(model_config["checkpoint"], model_config.get("revision"),
                                model_config["allow_download"])
    path = Path(source["path"])
    if not (path / "config.json").exists():
        raise CheckpointError(f"{path}: no config.json; not a transformers checkpoint directory")
    if not list(path.glob("*.safetensors")):
        raise CheckpointError(f"{path}: no *.safetensors weights (only safetensors are loaded)")
    config = json.loads((path / "config.json").read_text())
    found = config.get("architectures") or []
    if backend.model_class not in found:
        raise CheckpointError(f"{path}: config.json declares {found}, but model.backend "
                              f"'{backend.name}' loads {backend.model_class}")
    start = time.perf_counter()
    files = file_digests(path, model_config["hash_weights"])
    log(f"checkpoint {source['name']} -> {path} (commit {source['commit']}); "
        f"{len(files)} files recorded in {time.perf_counter() - start:.1f}s")
    record = {"backend": backend.name, "model_class": backend.model_class, "source": source,
              "files": files, "trust_remote_code": model_config["trust_remote_code"],
              "training": training_policy(model_config)}
    write_json(out_dir / CHECKPOINT_FILE, record)
    return record


def built_record(model_config: dict) -> dict:
    """checkpoint.json of a model built and saved in the base directory itself (tiny back-end)."""
    return {"backend": model_config["backend"], "model_class": BACKENDS[model_config["backend"]].model_class,
            "source": {"kind": "built", "path": "."}, "trust_remote_code": False,
            "training": training_policy(model_config)}


# --- loading -----------------------------------------------------------------------------------

class QwenVLProcessor:
    """The image-text processing of the Qwen2-VL family, from the checkpoint's image processor and
    tokenizer: each image token of the text becomes as many tokens as the vision tower gives
    features (its patch grid / merge size²). Same expansion as transformers' Qwen2VLProcessor,
    without its video part (which needs torchvision)."""

    patch_images = True  # images are patch sequences with a (t, h, w) grid (see encoding.PatchImage)

    def __init__(self, image_processor, tokenizer, image_token: str = "<|image_pad|>"):
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise CheckpointError(f"tokenizer has no image token '{self.image_token}'")

    def image_tokens(self, grid_thw) -> int:
        return int(grid_thw.prod()) // self.image_processor.merge_size ** 2

    def __call__(self, text: list[str], images=None, **kwargs):
        images = list(images or [])
        grids = self.image_processor(images=images, return_tensors="pt")["image_grid_thw"] if images else []
        expanded, cursor = [], 0
        for item in text:
            parts = item.split(self.image_token)
            out = parts[0]
            for part in parts[1:]:
                if cursor >= len(grids):
                    raise ValueError("more image tokens in the text than images")
                out += self.image_token * self.image_tokens(grids[cursor]) + part
                cursor += 1
            expanded.append(out)
        if cursor != len(grids):
            raise ValueError(f"{len(grids)} images but {cursor} image tokens in the text")
        return self.tokenizer(expanded, **kwargs)

    def save_pretrained(self, directory) -> None:
        self.image_processor.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)


def load_processor(backend: str, path: str | Path, trust_remote_code: bool = False):
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer
    kind = BACKENDS[backend].processor
    if kind == "llava":
        return AutoProcessor.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True,
                                                         trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    return QwenVLProcessor(image_processor, tokenizer)


def read_record(base_dir: str | Path) -> dict:
    base_dir = Path(base_dir)
    if (base_dir / CHECKPOINT_FILE).exists():
        return read_json(base_dir / CHECKPOINT_FILE)
    if (base_dir / "config.json").exists():  # a base directory written before checkpoint.json existed
        return {"backend": "tiny", "model_class": "LlavaForConditionalGeneration",
                "source": {"kind": "built", "path": "."}, "trust_remote_code": False, "training": {}}
    raise CheckpointError(f"{base_dir}: no model checkpoint ({CHECKPOINT_FILE} and config.json missing)")


def weights_path(base_dir: str | Path, record: dict) -> Path:
    """The directory holding the weights: the base directory itself, or the recorded snapshot."""
    source = record["source"]
    if source["path"] == ".":
        return Path(base_dir)
    path = Path(source["path"])
    if path.is_dir():
        return path
    if source["kind"] == "hub" and source.get("commit"):  # same snapshot, cache elsewhere on this host
        return Path(resolve_checkpoint(source["name"], source["commit"], False)["path"])
    raise CheckpointError(f"recorded checkpoint directory {path} is not available on this machine")


def device_of(name: str) -> torch.device:
    if name in ("auto", "multi"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def load_model(base_dir: str | Path, device: str = "cpu", dtype: str = "float32"):
    """(model, processor) of a base directory, on ``device`` ("multi": split over all visible GPUs
    by accelerate's device map), in eval mode, with the LoRA target of its training policy."""
    import transformers
    record = read_record(base_dir)
    path = weights_path(base_dir, record)
    remote = bool(record.get("trust_remote_code", False))
    model_class = getattr(transformers, record["model_class"])
    kwargs = {"dtype": DTYPES[dtype], "use_safetensors": True, "local_files_only": True,
              "trust_remote_code": remote}
    if device == "multi":
        kwargs["device_map"] = "auto"
    model = model_class.from_pretrained(path, **kwargs)
    processor = load_processor(record["backend"], path, remote)
    if device != "multi":
        model.to(device_of(device))
    policy = record.get("training") or {}
    if policy.get("lora_target"):
        model.pulse_lora_target = policy["lora_target"]  # read by chain.add_lora
    if policy.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()  # gradients reach the LoRA layers through checkpoints
    return model.eval(), processor
