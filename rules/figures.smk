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
        "../envs/lpselect.yaml"
    resources:
        mem_mb=RES["light"]["mem_mb"],
        runtime=RES["light"]["runtime"],
    params:
        scored_models=SCORED_MODELS,
        options=FIGURE_OPTIONS,
    script:
        "../workflow_scripts/figure.py"
