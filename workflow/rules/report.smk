# Stage 6 - aggregation: per seed, one long table (one row per number); over seeds, the mean
# table, its spread (std, 95% interval) and a readable summary per knowledge source.


rule summarize_seed:
    input:
        evals=seed_evals,
        splits=f"{DATA}/splits.json",
    output:
        csv=f"{SEEDED}/summary.csv",
        provenance=f"{SEEDED}/provenance.csv",
    params:
        manifest=manifest_of,
    log:
        f"{SEEDED}/logs/summarize.log",
    benchmark:
        f"{SEEDED}/benchmarks/summarize.tsv"
    shell:
        "pulse summarize --manifest {params.manifest:q} --splits {input.splits:q}"
        " --csv {output.csv:q} --provenance {output.provenance:q} > {log:q} 2>&1"


rule aggregate:
    input:
        expand(f"{SEEDED}/summary.csv", seed=SEEDS),
    output:
        csv=f"{RUN}/summary.csv",
        stats=f"{RUN}/summary_stats.csv",
        md=f"{RUN}/summary.md",
    log:
        f"{RUN}/logs/aggregate.log",
    benchmark:
        f"{RUN}/benchmarks/aggregate.tsv"
    shell:
        "pulse aggregate --inputs {input:q} --csv {output.csv:q} --stats {output.stats:q}"
        " --md {output.md:q} > {log:q} 2>&1"
