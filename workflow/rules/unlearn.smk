# Stage 4 - unlearning: for each knowledge source, method and schedule, request k forgets the
# k-th of K equal chunks of the forget set, starting from the model at step k-1. Each step
# stores only its own LoRA delta; the model at step k = base + fine-tune + steps 1..k.


def previous_chain(wildcards):
    directories = adapter_chain(wildcards.knowledge, wildcards.method, wildcards.schedule, int(wildcards.step) - 1)
    return adapter_files(directories)


def unlearn_settings(wildcards):
    return as_json(
        {
            **method_settings(config, wildcards.method),
            **MODEL_RUNTIME,
            "seed": config["seed"],
            "knowledge": wildcards.knowledge,
            "schedule": wildcards.schedule,
            "request": int(wildcards.step),
            "requests": SCHEDULES[wildcards.schedule],
        }
    )


rule unlearn:
    input:
        DATA_FILES,
        f"{BASE}/model.safetensors",
        chain=previous_chain,
    output:
        f"{RUN}/unlearn/{{knowledge}}/{{method}}/{{schedule}}/step{{step}}/adapter_model.safetensors",
    params:
        settings=unlearn_settings,
        chain=lambda wildcards, input: [os.path.dirname(f) for f in input.chain],
        out=lambda wildcards, output: os.path.dirname(output[0]),
    threads: threads_of("unlearn")
    resources:
        **resources_of("unlearn"),
    log:
        f"{RUN}/logs/unlearn/{{knowledge}}/{{method}}/{{schedule}}/step{{step}}.log",
    benchmark:
        f"{RUN}/benchmarks/unlearn/{{knowledge}}/{{method}}/{{schedule}}/step{{step}}.tsv"
    shell:
        "pulse unlearn --params {params.settings:q} --data {DATA} --base {BASE}"
        " --chain {params.chain:q} --out {params.out:q} --threads {threads} > {log:q} 2>&1"
