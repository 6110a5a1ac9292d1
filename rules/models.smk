rule build_tokenizer:
    input:
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        directory("results/tokenizers/{dataset}"),
    log:
        "results/logs/build_tokenizer/{dataset}.log",
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        vocab_size=config.get("fresh_models", {}).get("vocab_size"),
        template=config["prompt_template"],
    script:
        "../workflow_scripts/build_tokenizer.py"


rule prepare_model:
    input:
        tokenizer=fresh_tokenizer_input,
    output:
        directory("results/models/{model}"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../envs/model.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("extract", "mem_mb"),
        runtime=sized("extract", "runtime"),
        gpu=sized("extract", "gpus"),
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        spec=lambda wildcards: config["models"][wildcards.model],
        seed=config["seed"],
        warmup=config.get("fresh_models", {}).get("warmup"),
        hp=config["training"],
        max_length=config["max_length"],
        template=config["prompt_template"],
    script:
        "../workflow_scripts/prepare_model.py"
