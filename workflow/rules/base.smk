# Stage 2 - base model: a tiny LLaVA (CLIP tower + Llama LM) pre-trained here on the world
# entities and the utility task, so that its "pre-trained knowledge" is real.


rule base:
    input:
        data=DATA_FILES,
    output:
        f"{BASE}/model.safetensors",
        f"{BASE}/config.json",
    params:
        data=input_dir("data"),
        out=output_dir,
        settings=as_json(
            {
                "seed": config["seed"],
                "device": config["model"]["device"],
                "tiny": config["model"]["tiny"],
                "train": config["pretrain"],
            }
        ),
    threads: threads_of("base")
    resources:
        **resources_of("base"),
    log:
        f"{RUN}/logs/base.log",
    benchmark:
        f"{RUN}/benchmarks/base.tsv"
    shell:
        "pulse base --params {params.settings:q} --data {params.data:q} --out {params.out:q}"
        " --threads {threads} > {log:q} 2>&1"
