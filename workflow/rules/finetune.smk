# Stage 3 - knowledge injection: a LoRA adapter teaches the fictitious entities while world
# data is replayed, so the fine-tuned model holds both kinds of knowledge (= step 0).


rule finetune:
    input:
        data=DATA_FILES,
        base=BASE_FILE,
    output:
        f"{SEEDED}/finetune/adapter_model.safetensors",
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
        f"{SEEDED}/logs/finetune.log",
    benchmark:
        f"{SEEDED}/benchmarks/finetune.tsv"
    shell:
        "pulse finetune --params {params.settings:q} --data {params.data:q} --base {params.base:q}"
        " --out {params.out:q} --threads {threads} > {log:q} 2>&1"
