# Stage 6 - aggregation: one long table (one row per number) and a readable summary per
# knowledge source, from the evaluation files only.


def manifest():
    """Every evaluated checkpoint with its coordinates; the base model is a reference row."""
    base = [
        {"knowledge": k, "method": "base", "schedule": "none", "step": 0, "requests": 1, "path": f"{RUN}/eval/base.json"}
        for k in KNOWLEDGE
    ]
    return base + [
        {
            "knowledge": k,
            "method": m,
            "schedule": s,
            "step": step,
            "requests": SCHEDULES[s],
            "path": eval_file(k, m, s, step),
        }
        for k, m, s, step in checkpoint_coordinates()
    ]


rule summarize:
    input:
        evals=sorted({entry["path"] for entry in manifest()}),
        splits=f"{DATA}/splits.json",
    output:
        csv=f"{RUN}/summary.csv",
        md=f"{RUN}/summary.md",
    params:
        manifest=as_json(manifest()),
    resources:
        **resources_of("summarize"),
    log:
        f"{RUN}/logs/summarize.log",
    benchmark:
        f"{RUN}/benchmarks/summarize.tsv"
    shell:
        "pulse summarize --manifest {params.manifest:q} --splits {input.splits:q}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"
