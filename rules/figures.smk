# light jobs run on the submitting host, not as cluster jobs
localrules:
    figures,
    figure,


# every figure each dataset has, in one job per dataset (rules/common.smk: SHARED_FIGURES)
rule figures:
    input:
        unpack(shared_figure_inputs),
    output:
        [
            report(
                f"results/figures/{{dataset}}/{figure}.{ext}",
                caption="../report/figures.rst",
                category="Figures",
                labels={"dataset": "{dataset}", "figure": figure},
            )
            for figure in SHARED_FIGURES
            for ext in FORMATS
        ],
    log:
        "results/logs/figures/{dataset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        drawn={figure: FIGURE_TABLES[figure] for figure in SHARED_FIGURES},
        scored_models=SCORED_MODELS,
        options=FIGURE_OPTIONS,
    script:
        "../workflow_scripts/figures.py"


# a figure of its own: the transfer diagnostic's (no fine-tune needed) and those some datasets lack
rule figure:
    input:
        unpack(figure_inputs),
    output:
        report(
            expand("results/figures/{{dataset}}/{{figure}}.{ext}", ext=FORMATS),
            caption="../report/figure.rst",
            category="Figures",
            labels={"dataset": "{dataset}", "figure": "{figure}"},
        ),
    log:
        "results/logs/figure/{dataset}/{figure}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        drawn=lambda wildcards: {wildcards.figure: FIGURE_TABLES[wildcards.figure]},
        scored_models=SCORED_MODELS,
        options=FIGURE_OPTIONS,
    script:
        "../workflow_scripts/figures.py"
