# Stage 1 - data: the configured source (synthetic world, a local MLLMU-Bench copy, or a prepared
# dataset) converted into the MLLMU-Bench row layout every later stage reads, and the forget/retain
# entity splits of each knowledge source (forget order = order of the sequential requests).


rule data:
    output:
        DATA_TABLES,
        f"{DATA}/candidate_splits.json" if SELECT_KNOWN else f"{DATA}/splits.json",
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


if SELECT_KNOWN:

    # Pre-trained knowledge = the entities the base model knows best (PULSE): the base stage scored
    # the candidates; their forget/retain split joins the other splits here.
    rule splits:
        input:
            candidates=f"{DATA}/candidate_splits.json",
            known=f"{BASE}/known_entities.json",
        output:
            f"{DATA}/splits.json",
        log:
            f"{RUN}/logs/splits.log",
        resources:
            **resources_of("data"),
        shell:
            "pulse splits --candidates {input.candidates:q} --known {input.known:q} --out {output:q}"
            " > {log:q} 2>&1"
