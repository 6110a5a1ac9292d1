# one job per evaluated model, the only one that runs it: held-out losses and generations
# (predictions.csv), their own metrics (metrics.json) and, when the held-out split is an evaluation
# set, its generations in AlpacaEval's format. Nothing here reads another model, so a comparison
# setting, a compare-script edit or a re-evaluated full-data model never needs this (temporary) model
# again.
rule evaluate:
    input:
        model=model_to_evaluate,
        rows="results/datasets/{dataset}/test.jsonl",
    output:
        **(
            {
                "responses": f"results/responses/{{dataset}}/{study.HELDOUT}/{{target}}/{{selector}}/{{subset}}.json"
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


if NAMED_SETS:

    # a download (or a local file's copy): on the submitting host, where the network is
    localrules:
        prepare_eval_set,

    # a named evaluation set, prepared once for every dataset and model
    rule prepare_eval_set:
        output:
            "results/eval_sets/{eval_set}.jsonl",
        log:
            "results/logs/prepare_eval_set/{eval_set}.log",
        wildcard_constraints:
            eval_set="|".join(map(re.escape, NAMED_SETS)),
        conda:
            "../envs/model.yaml"
        resources:
            mem_mb=light("mem_mb"),
            runtime=light("runtime"),
        params:
            spec=lambda wildcards: EVAL_SETS[wildcards.eval_set],
        script:
            "../workflow_scripts/prepare_eval_set.py"


# responses of a model to an evaluation set that evaluate did not already generate (a named set; the
# held-out split when evaluation.generate is off and a judge reads them): one job per (model, set)
if GENERATED_SETS:

    rule responses:
        input:
            rows=eval_rows,
            model=model_to_evaluate,
        output:
            "results/responses/{dataset}/{eval_set}/{target}/{selector}/{subset}.json",
        log:
            "results/logs/responses/{dataset}/{eval_set}/{target}/{selector}/{subset}.log",
        benchmark:
            "results/benchmarks/responses/{dataset}/{eval_set}/{target}/{selector}/{subset}.tsv"
        wildcard_constraints:
            eval_set="|".join(map(re.escape, GENERATED_SETS)),
        # as evaluate: before another fine-tune starts, so the temporary checkpoint it reads goes
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

    # one job per (model, evaluation set): the model against the full-data model of its seed
    rule judge:
        input:
            responses="results/responses/{dataset}/{eval_set}/{target}/{selector}/{subset}.json",
            reference=judge_reference,
        output:
            summary="results/judge/{dataset}/{eval_set}/{target}/{selector}/{subset}.json",
            verdicts="results/judge/{dataset}/{eval_set}/{target}/{selector}/{subset}.csv",
        log:
            "results/logs/judge/{dataset}/{eval_set}/{target}/{selector}/{subset}.log",
        benchmark:
            "results/benchmarks/judge/{dataset}/{eval_set}/{target}/{selector}/{subset}.tsv"
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
            cache="results/.cache/judge/{dataset}/{eval_set}/{target}/{selector}/{subset}.jsonl",
        script:
            "../workflow_scripts/judge.py"
