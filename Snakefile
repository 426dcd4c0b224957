# PULSE: which knowledge (fine-tuned vs pre-trained) and how long (one-shot vs sequential
# requests) can multimodal unlearning hold up? One DAG, every checkpoint a file target:
#   data -> base -> finetune -> unlearn step 1..K (per knowledge, method, schedule) -> evaluate -> report
# plus the gold models (never saw the forget set) that forget quality compares with.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the command line names config files: then those alone define the
# run (Snakemake would otherwise merge them into the default, e.g. keep its methods).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The published image of this version (docker/Dockerfile, docs/container.md): every job runs in it
# with `--sdm apptainer`; ignored otherwise.
container: "docker://ghcr.io/pulse-unlearning/pulse:0.1.0"
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/common_eval.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/gold.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        f"{RUN}/summary.csv",
        f"{RUN}/summary.md",
        PLOT_FILES,
    default_target: True
