# one job per evaluated model, the only one that runs it: held-out losses and generations
# (predictions.csv), their own metrics (metrics.json) and, when they are the study's responses, the
# generations in AlpacaEval's format. Nothing here reads another model, so a comparison setting, a
# compare-script edit or a re-evaluated full-data model never needs this (temporary) model again.
rule evaluate:
    input:
        model=model_to_evaluate,
        rows="results/datasets/{dataset}/test.jsonl",
    output:
        **(
            {
                "responses": "results/responses/{dataset}/{target}/{selector}/{subset}.json"
            }
            if REUSE_PREDICTIONS
            else {}
        ),
        predictions="results/eval/{dataset}/{target}/{selector}/{subset}/predictions.csv",
        metrics="results/eval/{dataset}/{target}/{selector}/{subset}/metrics.json",
        ledger="results/ledger/evaluate/{dataset}/{target}/{selector}/{subset}.json",
    log:
        "results/logs/evaluate/{dataset}/{target}/{selector}/{subset}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{target}/{selector}/{subset}.tsv"
    # before another fine-tune starts: it frees the temporary checkpoint it reads
    priority: 20
    conda:
        "../envs/model.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("extract", "mem_mb"),
        runtime=sized("extract", "runtime"),
        gpu=one_gpu("extract"),
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        cfg=study.result_settings(config, "evaluation"),
        max_length=config["max_length"],
        template=config["prompt_template"],
        generator="{target}/{selector}/{subset}",
    script:
        "../workflow_scripts/evaluate.py"


# light and local: a model's predictions against those of the full-data model of its seed
localrules:
    compare,


rule compare:
    input:
        predictions="results/eval/{dataset}/{target}/{selector}/{subset}/predictions.csv",
        reference=compare_reference,
    output:
        "results/eval/{dataset}/{target}/{selector}/{subset}/pairwise.json",
    log:
        "results/logs/compare/{dataset}/{target}/{selector}/{subset}.log",
    wildcard_constraints:
        subset=f"base|{SUBSET_PATTERN}",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        tie_tolerance=config["evaluation"]["tie_tolerance"],
    script:
        "../workflow_scripts/compare.py"


if EVAL_SET:

    rule prepare_eval_set:
        output:
            f"results/eval_sets/{EVAL_SET['name']}.jsonl",
        log:
            f"results/logs/prepare_eval_set/{EVAL_SET['name']}.log",
        conda:
            "../envs/model.yaml"
        resources:
            mem_mb=light("mem_mb"),
            runtime=light("runtime"),
        params:
            spec=EVAL_SET,
        script:
            "../workflow_scripts/prepare_eval_set.py"


# responses of a model that evaluate did not already generate for (a named evaluation set, or a judge
# without evaluation.generate)
if not REUSE_PREDICTIONS:

    rule responses:
        input:
            rows=eval_rows,
            model=model_to_evaluate,
        output:
            "results/responses/{dataset}/{target}/{selector}/{subset}.json",
        log:
            "results/logs/responses/{dataset}/{target}/{selector}/{subset}.log",
        benchmark:
            "results/benchmarks/responses/{dataset}/{target}/{selector}/{subset}.tsv"
        conda:
            "../envs/model.yaml"
        threads: sized_threads
        resources:
            mem_mb=sized("extract", "mem_mb"),
            runtime=sized("extract", "runtime"),
            gpu=one_gpu("extract"),
            gpu_model=sized("extract", "gpu_model"),
            cpus_per_gpu=sized("extract", "cpus_per_gpu"),
        params:
            generator="{target}/{selector}/{subset}",
            cfg=study.result_settings(config, "evaluation"),
            template=config["prompt_template"],
        script:
            "../workflow_scripts/responses.py"


if JUDGE:

    # local: it only waits on a remote API (no GPU, little memory), and the API key stays on this host
    # (declared here, not above: a localrules entry without its rule makes Snakemake warn on every run)
    localrules:
        judge,

    rule judge:
        input:
            responses="results/responses/{dataset}/{target}/{selector}/{subset}.json",
            reference=judge_reference,
        output:
            summary="results/judge/{dataset}/{target}/{selector}/{subset}.json",
            verdicts="results/judge/{dataset}/{target}/{selector}/{subset}.csv",
        log:
            "results/logs/judge/{dataset}/{target}/{selector}/{subset}.log",
        benchmark:
            "results/benchmarks/judge/{dataset}/{target}/{selector}/{subset}.tsv"
        wildcard_constraints:
            subset=f"base|{SUBSET_PATTERN}",
        conda:
            "../envs/light.yaml"
        resources:
            mem_mb=RES.get("judge", RES["light"])["mem_mb"],
            runtime=RES.get("judge", RES["light"])["runtime"],
        params:
            cfg=JUDGE,
            # not an output: Snakemake would delete it when a job fails, and it is what lets a job resume
            cache="results/.cache/judge/{dataset}/{target}/{selector}/{subset}.jsonl",
        script:
            "../workflow_scripts/judge.py"
