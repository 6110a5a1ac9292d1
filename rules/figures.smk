# light jobs run on the submitting host, not as cluster jobs
localrules:
    figure,


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
        scored_models=SCORED_MODELS,
        options=FIGURE_OPTIONS,
    script:
        "../workflow_scripts/figure.py"
