# Learning-percentage data selection: a small proxy model picks instruction-tuning data for a larger
# target (Mekala, Nguyen & Shang, 2024). Stages: datasets -> models -> proxy training, loss extraction
# and LP scores -> clusters and subsets -> target fine-tuning -> evaluation -> tables and figures.
# A config with a `dumps` block instead re-analyses the paper's released perplexities (no training).


# config.yaml is the default study; a study given with --configfile replaces it (it is not merged in)
if not config:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/common_export.smk"


if DUMPS_STUDY:

    include: "rules/dumps.smk"

else:

    include: "rules/datasets.smk"
    include: "rules/models.smk"
    include: "rules/proxy.smk"
    include: "rules/selection.smk"
    include: "rules/target.smk"
    include: "rules/evaluation.smk"
    include: "rules/aggregate.smk"
    include: "rules/export.smk"


include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
