# one job per evaluated model, the only one that runs it (loaded once): held-out losses and
# generations (predictions.csv), their own metrics (metrics.json) and its answers to every evaluation
# set in AlpacaEval's format (the held-out split's are the generations it made). Nothing here reads
# another model, so a comparison setting, a compare-script edit or a re-evaluated full-data model never
# needs this (temporary) model again. Sets are listed by name (study.response_sets): reordering
# evaluation.eval_sets changes no job; adding one reruns these jobs (the generations), which need the model.
rule evaluate:
    input:
        model=model_to_evaluate,
        rows="results/datasets/{dataset}/test.jsonl",
        sets=expand("results/eval_sets/{eval_set}.jsonl", eval_set=NAMED_SETS),
    output:
        predictions="results/eval/{dataset}/{target}/{selector}/{subset}/predictions.csv",
        metrics="results/eval/{dataset}/{target}/{selector}/{subset}/metrics.json",
        ledger="results/ledger/evaluate/{dataset}/{target}/{selector}/{subset}.json",
        # one per name of params.response_sets, in its order
        responses=[
            f"results/responses/{{dataset}}/{name}/{{target}}/{{selector}}/{{subset}}.json"
            for name in RESPONSE_SETS
        ],
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
        nodes=1,
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        cfg=study.result_settings(config, "evaluation"),
        max_length=config["max_length"],
        template=config["prompt_template"],
        generator="{target}/{selector}/{subset}",
        response_sets=RESPONSE_SETS,
    script:
        "../workflow_scripts/evaluate.py"


# light and local: the predictions of a target's models against those of the full-data model of their
# seed, one job per (dataset, target): a new tie tolerance reruns these and no model pass; a new target
# adds its own job only
localrules:
    compare,


rule compare:
    input:
        predictions=[
            f"results/eval/{{dataset}}/{{target}}/{sel}/{sub}/predictions.csv"
            for sel, sub in COMPARED
        ],
        references=[
            f"results/eval/{{dataset}}/{{target}}/none/{study.pairwise_reference(GRID, sub)}/predictions.csv"
            for sel, sub in COMPARED
        ],
    output:
        [
            f"results/eval/{{dataset}}/{{target}}/{sel}/{sub}/pairwise.json"
            for sel, sub in COMPARED
        ],
    log:
        "results/logs/compare/{dataset}/{target}.log",
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


if JUDGE:

    # local: it only waits on a remote API (no GPU, little memory), and the API key stays on this host
    # (declared here, not above: a localrules entry without its rule makes Snakemake warn on every run)
    localrules:
        judge,

    # one job per model, every judged set (study.judged_sets): the model against the full-data model
    # of its seed; a set added later finds the other sets' verdicts in the cache
    rule judge:
        input:
            responses=[
                f"results/responses/{{dataset}}/{e}/{{target}}/{{selector}}/{{subset}}.json"
                for e in JUDGED_SETS
            ],
            references=judge_references,
        output:
            # one per name of JUDGED_SETS, in its order
            summary=[
                f"results/judge/{{dataset}}/{e}/{{target}}/{{selector}}/{{subset}}.json"
                for e in JUDGED_SETS
            ],
            verdicts=[
                f"results/judge/{{dataset}}/{e}/{{target}}/{{selector}}/{{subset}}.csv"
                for e in JUDGED_SETS
            ],
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
            # the sets judged are the outputs (judge.sets: a change reruns these jobs, the cache answers)
            cfg={k: v for k, v in JUDGE.items() if k != "sets"},
            # not outputs: Snakemake would delete them when a job fails, and they let a job resume
            cache=lambda wildcards: [
                f"results/.cache/judge/{wildcards.dataset}/{e}/{wildcards.target}/{wildcards.selector}/{wildcards.subset}.jsonl"
                for e in JUDGED_SETS
            ],
        script:
            "../workflow_scripts/judge.py"


# light and local: which prompts of every evaluation set (the held-out split among them) the training
# rows contain, exactly and after normalising whitespace and case (warned in summary.md)
localrules:
    leak_check,


rule leak_check:
    input:
        train="results/datasets/{dataset}/train.jsonl",
        heldout="results/datasets/{dataset}/test.jsonl",
        named=[f"results/eval_sets/{name}.jsonl" for name in NAMED_SETS],
    output:
        "results/datasets/{dataset}/leaks.json",
    log:
        "results/logs/leak_check/{dataset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        named=NAMED_SETS,
    script:
        "../workflow_scripts/leak_check.py"
