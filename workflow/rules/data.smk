# Stage 1 - data: the synthetic entity world in the MLLMU-Bench layout, and the forget/retain
# entity splits of each knowledge source (forget order = order of the sequential requests).


rule data:
    output:
        DATA_FILES,
    params:
        out=output_dir,
        settings=as_json(config["data"]),
    log:
        f"{RUN}/logs/data.log",
    benchmark:
        f"{RUN}/benchmarks/data.tsv"
    resources:
        **resources_of("data"),
    shell:
        "pulse data --params {params.settings:q} --out {params.out:q} > {log:q} 2>&1"
