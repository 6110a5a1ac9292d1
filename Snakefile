# Learning-percentage data selection: a small proxy model picks instruction-tuning data for a larger
# target (Mekala, Nguyen & Shang, 2024). Stages: datasets -> models -> proxy training, loss extraction
# and LP scores -> clusters and subsets -> target fine-tuning -> evaluation -> tables and figures.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/models.smk"
include: "rules/proxy.smk"
include: "rules/selection.smk"
include: "rules/target.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
