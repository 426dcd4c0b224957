# Gold models: for each knowledge source, the reference that never saw its forget set, trained by
# the ordinary stages on the data without the forget entities (pulse gold-data). Forget quality
# (truth-ratio KS test) and PrivLeak compare every checkpoint with the gold model of its seed.
#   finetuned:  base + the fine-tune adapter trained without the forget fictitious entities
#   pretrained: the base pre-trained without the forget world entities (+ the ordinary fine-tune
#               on top of it when pre-trained-knowledge unlearning starts from the fine-tuned model)
# Sequential schedules are compared with the gold model of the whole forget set: at step k the
# `forget_requested` split restricts both models to the entities requested so far (docs/evaluation.md).


rule gold_data:
    input:
        data=DATA_FILES,
    output:
        [f"{GOLD}/{{knowledge}}/data/{os.path.basename(f)}" for f in DATA_FILES],
    params:
        data=input_dir("data"),
        out=output_dir,
        settings=lambda wildcards: as_json({"knowledge": wildcards.knowledge}),
    log:
        f"{RUN}/logs/gold/{{knowledge}}/data.log",
    benchmark:
        f"{RUN}/benchmarks/gold/{{knowledge}}/data.tsv"
    resources:
        **resources_of("data"),
    shell:
        "pulse gold-data --params {params.settings:q} --data {params.data:q} --out {params.out:q} > {log:q} 2>&1"


# The base stage's settings, data without the forget world entities.
rule gold_base:
    input:
        data=[f"{GOLD}/pretrained/data/{os.path.basename(f)}" for f in DATA_FILES],
    output:
        f"{GOLD}/pretrained/base/model.safetensors",
        f"{GOLD}/pretrained/base/config.json",
    params:
        data=input_dir("data"),
        out=output_dir,
        # the base job's settings without the known-entity selection
        settings=as_json({**base_settings(), "select": None}),
    threads: threads_of("base")
    resources:
        **resources_of("base"),
    log:
        f"{RUN}/logs/gold/pretrained/base.log",
    benchmark:
        f"{RUN}/benchmarks/gold/pretrained/base.tsv"
    shell:
        "pulse base --params {params.settings:q} --data {params.data:q} --out {params.out:q}"
        " --threads {threads} > {log:q} 2>&1"


# The fine-tune stage's settings, data without the forget entities of {knowledge}.
rule gold_finetune:
    input:
        data=[f"{GOLD}/{{knowledge}}/data/{os.path.basename(f)}" for f in DATA_FILES],
        base=gold_finetune_base,
    output:
        f"{SEEDED}/gold/{{knowledge}}/finetune/adapter_model.safetensors",
    params:
        data=input_dir("data"),
        base=input_dir("base"),
        out=output_dir,
        settings=lambda wildcards: as_json(
            {"seed": int(wildcards.seed), **MODEL_RUNTIME, "train": config["finetune"]}
        ),
    threads: threads_of("finetune")
    resources:
        **resources_of("finetune"),
    log:
        f"{SEEDED}/logs/gold/{{knowledge}}/finetune.log",
    benchmark:
        f"{SEEDED}/benchmarks/gold/{{knowledge}}/finetune.tsv"
    shell:
        "pulse finetune --params {params.settings:q} --data {params.data:q} --base {params.base:q}"
        " --out {params.out:q} --threads {threads} > {log:q} 2>&1"
