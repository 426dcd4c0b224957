# Stage 6 - aggregation: one long table (one row per number) and a readable summary per
# knowledge source, from the evaluation files only.


rule summarize:
    input:
        evals=sorted({entry["path"] for entry in manifest()}),
        splits=f"{DATA}/splits.json",
    output:
        csv=f"{RUN}/summary.csv",
        md=f"{RUN}/summary.md",
    params:
        manifest=as_json(manifest()),
    log:
        f"{RUN}/logs/summarize.log",
    benchmark:
        f"{RUN}/benchmarks/summarize.tsv"
    shell:
        "pulse summarize --manifest {params.manifest:q} --splits {input.splits:q}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"
