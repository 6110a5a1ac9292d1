# light jobs run on the submitting host, not as cluster jobs
localrules:
    evaluate,


rule predict:
    input:
        model=model_to_evaluate,
        rows="results/datasets/{dataset}/test.jsonl",
    output:
        "results/eval/{dataset}/{target}/{selector}/{subset}/predictions.csv",
    log:
        "results/logs/predict/{dataset}/{target}/{selector}/{subset}.log",
    benchmark:
        "results/benchmarks/predict/{dataset}/{target}/{selector}/{subset}.tsv"
    conda:
        "../envs/lpselect.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("extract", "mem_mb"),
        runtime=sized("extract", "runtime"),
        gpu=sized("extract", "gpus"),
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        cfg=config["evaluation"],
        max_length=config["max_length"],
        template=config["prompt_template"],
    script:
        "../workflow_scripts/predict.py"


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        "results/eval/{dataset}/{target}/{selector}/{subset}/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{target}/{selector}/{subset}.log",
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        tie_tolerance=config["evaluation"]["tie_tolerance"],
    script:
        "../workflow_scripts/evaluate.py"
