# Stage 4 - unlearning: for each knowledge source, method and schedule, request k forgets the
# k-th of K equal chunks of the forget set, starting from the model at step k-1. Each step
# stores only its own LoRA delta; the model at step k = base + fine-tune + steps 1..k.


rule unlearn:
    input:
        data=DATA_FILES,
        base=BASE_FILE,
        chain=previous_chain,
    output:
        f"{SEEDED}/unlearn/{{knowledge}}/{{method}}/{{schedule}}/step{{step}}/adapter_model.safetensors",
    params:
        data=input_dir("data"),
        base=input_dir("base"),
        chain=chain_dirs,
        out=output_dir,
        settings=unlearn_settings,
    threads: threads_of("unlearn")
    resources:
        **resources_of("unlearn"),
    log:
        f"{SEEDED}/logs/unlearn/{{knowledge}}/{{method}}/{{schedule}}/step{{step}}.log",
    benchmark:
        f"{SEEDED}/benchmarks/unlearn/{{knowledge}}/{{method}}/{{schedule}}/step{{step}}.tsv"
    shell:
        "pulse unlearn --params {params.settings:q} --data {params.data:q} --base {params.base:q}"
        " --chain {params.chain:q} --out {params.out:q} --threads {threads} > {log:q} 2>&1"
