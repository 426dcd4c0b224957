# Stage 5 - evaluation of every checkpoint: the base, the fine-tuned model (step 0) and every
# unlearning step. MCQ accuracy by option likelihood on every population, train and test
# variants, image+text and text-only. One rule; the checkpoint name says which chain to load.


def checkpoint_chain(name):
    """Adapter directories of a checkpoint name: base, finetune or {knowledge}/{method}/{schedule}/step{k}."""
    if name == "base":
        return []
    if name == "finetune":
        return [FINETUNE]
    knowledge, method, schedule, step = name.split("/")
    return adapter_chain(knowledge, method, schedule, int(step.removeprefix("step")))


rule evaluate:
    input:
        DATA_FILES,
        f"{BASE}/model.safetensors",
        chain=lambda wildcards: adapter_files(checkpoint_chain(wildcards.checkpoint)),
    output:
        f"{RUN}/eval/{{checkpoint}}.json",
    wildcard_constraints:
        checkpoint="base|finetune|[^/]+/[^/]+/[^/]+/step[0-9]+",
    params:
        settings=as_json({**MODEL_RUNTIME, **config["evaluate"]}),
        chain=lambda wildcards, input: [os.path.dirname(f) for f in input.chain],
    threads: threads_of("evaluate")
    resources:
        **resources_of("evaluate"),
    log:
        f"{RUN}/logs/eval/{{checkpoint}}.log",
    benchmark:
        f"{RUN}/benchmarks/eval/{{checkpoint}}.tsv"
    shell:
        "pulse evaluate --params {params.settings:q} --data {DATA} --base {BASE}"
        " --chain {params.chain:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
