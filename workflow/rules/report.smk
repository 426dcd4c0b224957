# Stage 6 - aggregation: per seed, one long table (one row per number); over seeds, the mean
# table, its spread (std, 95% interval) and a readable summary per knowledge source; the figures
# and HTML tables that `snakemake --report` gathers into one self-contained HTML page (captions
# in workflow/report/), all from the evaluation files only.


rule summarize_seed:
    input:
        evals=seed_evals,
        gold=gold_evals,
        splits=f"{DATA}/splits.json",
    output:
        csv=f"{SEEDED}/summary.csv",
        provenance=f"{SEEDED}/provenance.csv",
    params:
        manifest=seed_manifest,
        gold=gold_files_of,
    resources:
        **resources_of("summarize"),
    log:
        f"{SEEDED}/logs/summarize.log",
    benchmark:
        f"{SEEDED}/benchmarks/summarize.tsv"
    shell:
        "pulse summarize --manifest {params.manifest:q} --splits {input.splits:q} --gold {params.gold:q}"
        " --csv {output.csv:q} --provenance {output.provenance:q} > {log:q} 2>&1"


rule aggregate:
    input:
        expand(f"{SEEDED}/summary.csv", seed=SEEDS),
    output:
        csv=report(f"{RUN}/summary.csv", category="Tables", caption="../report/summary_csv.rst"),
        stats=f"{RUN}/summary_stats.csv",
        md=f"{RUN}/summary.md",
    resources:
        **resources_of("summarize"),
    log:
        f"{RUN}/logs/aggregate.log",
    benchmark:
        f"{RUN}/benchmarks/aggregate.tsv"
    shell:
        "pulse aggregate --inputs {input:q} --csv {output.csv:q} --stats {output.stats:q}"
        " --md {output.md:q} > {log:q} 2>&1"


rule plots:
    input:
        csv=f"{RUN}/summary.csv",
        stats=f"{RUN}/summary_stats.csv",
    output:
        [
            report(
                f,
                category="Sequential unlearning",
                subcategory=f"{knowledge} knowledge",
                caption="../report/steps.rst",
                labels={"figure": os.path.basename(f)},
            )
            for knowledge, f in STEP_PLOTS
        ]
        + [
            report(
                f,
                category="Comparisons",
                caption=f"../report/{os.path.basename(f).split('.')[0]}.rst",
                labels={"figure": os.path.basename(f)},
            )
            for f in COMPARISON_PLOTS
        ]
        + [report(f"{PLOTS}/tables.html", category="Tables", caption="../report/tables.rst")],
    params:
        out=output_dir,
    resources:
        **resources_of("summarize"),
    log:
        f"{RUN}/logs/plots.log",
    benchmark:
        f"{RUN}/benchmarks/plots.tsv"
    shell:
        "pulse plot --csv {input.csv:q} --stats {input.stats:q} --out {params.out:q} > {log:q} 2>&1"
