# Stage 2 - base model. tiny: a tiny LLaVA (CLIP tower + Llama LM) pre-trained here on the world
# entities and the utility task, so that its "pre-trained knowledge" is real. A real checkpoint
# (LLaVA-1.5, Qwen2-VL, ...) is not trained: checkpoint.json records which one it is (name,
# revision, commit, file digests). With data.select_known the base is then scored on every world
# entity and the best-known ones are selected (known_entities.json).


rule base:
    input:
        data=DATA_TABLES,
    output:
        BASE_FILE,
        [f"{BASE}/model.safetensors", f"{BASE}/config.json"] if TINY else [],
        [f"{BASE}/known_entities.json"] if SELECT_KNOWN else [],
    params:
        data=input_dir("data"),
        out=output_dir,
        settings=as_json(base_settings()),
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
