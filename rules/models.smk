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


# a hub model is downloaded (gated ones with HF_TOKEN) and copied where the network is, on the submitting
# host; a fresh model's warm-up trains, on a GPU if its row has one, so a study with fresh models keeps
# prepare_model a cluster job (its hub models then need HF_HOME on shared storage, docs/cluster.md)
if not any(spec.get("source") == "fresh" for spec in config["models"].values()):

    localrules:
        prepare_model,


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
        # a GPU only to warm a fresh model up; a pretrained or packaged one is copied on the CPU
        gpu=fresh_only_gpu(one_gpu("extract"), 0),
        nodes=1,
        gpu_model=fresh_only_gpu(sized("extract", "gpu_model"), None),
        cpus_per_gpu=fresh_only_gpu(sized("extract", "cpus_per_gpu"), None),
    params:
        spec=lambda wildcards: config["models"][wildcards.model],
        # what builds and warms up a fresh model; nothing else depends on them
        seed=fresh_only(config["seed"]),
        warmup=fresh_only(config.get("fresh_models", {}).get("warmup")),
        hp=fresh_only(study.result_settings(config, "training")),
        max_length=fresh_only(config["max_length"]),
        template=fresh_only(config["prompt_template"]),
    script:
        "../workflow_scripts/prepare_model.py"


# The training split tokenized once per (dataset, tokenizer): fresh models share one tokenizer
# ("fresh"), every other model has its own. Every training and extraction job reads this folder.
rule tokenize:
    input:
        rows="results/datasets/{dataset}/train.jsonl",
        tokenizer=tokenizer_source,
    output:
        directory("results/tokenized/{dataset}/{tokenizer}"),
    log:
        "results/logs/tokenize/{dataset}/{tokenizer}.log",
    benchmark:
        "results/benchmarks/tokenize/{dataset}/{tokenizer}.tsv"
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        max_length=config["max_length"],
        template=config["prompt_template"],
    script:
        "../workflow_scripts/tokenize_rows.py"
