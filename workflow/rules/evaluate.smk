# Stage 5 - evaluation of every checkpoint: the base, the fine-tuned model (step 0), every
# unlearning step and the gold models. MCQ accuracy by option likelihood on every population,
# train and test variants; greedy answers to open questions (ROUGE-L, exact match); truth ratios
# and membership-inference scores; image+text and text-only (docs/evaluation.md). The checkpoint
# name says which model to load.


rule evaluate:
    input:
        data=DATA_FILES,
        base=evaluation_base,
        chain=evaluation_chain,
    output:
        f"{SEEDED}/eval/{{checkpoint}}.json",
    wildcard_constraints:
        checkpoint="finetune|gold/(finetuned|pretrained)|[^/]+/[^/]+/[^/]+/step[0-9]+",
    params:
        data=input_dir("data"),
        base=input_dir("base"),
        chain=chain_dirs,
        settings=as_json(EVAL_SETTINGS),
    threads: threads_of("evaluate")
    resources:
        **resources_of("evaluate"),
    log:
        f"{SEEDED}/logs/eval/{{checkpoint}}.log",
    benchmark:
        f"{SEEDED}/benchmarks/eval/{{checkpoint}}.tsv"
    shell:
        "pulse evaluate --params {params.settings:q} --data {params.data:q} --base {params.base:q}"
        " --chain {params.chain:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


use rule evaluate as evaluate_base with:
    input:
        data=DATA_FILES,
        base=BASE_FILE,
        chain=[],
    output:
        f"{RUN}/eval/base.json",
    log:
        f"{RUN}/logs/eval/base.log",
    benchmark:
        f"{RUN}/benchmarks/eval/base.tsv"
