# light jobs run on the submitting host, not as cluster jobs
localrules:
    select,
    ifd,
    response_lengths,


rule cluster:
    input:
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        "results/clusters/{dataset}.csv",
    log:
        "results/logs/cluster/{dataset}.log",
    benchmark:
        "results/benchmarks/cluster/{dataset}.tsv"
    conda:
        "../envs/light.yaml"
        if config["clustering"]["embedding"] == "tfidf"
        else "../envs/model.yaml"
    threads: RES.get("cluster", {}).get("threads", 1)
    resources:
        mem_mb=RES.get("cluster", RES["light"])["mem_mb"],
        runtime=lambda wildcards, attempt: study.retry_runtime(
            config, RES.get("cluster", RES["light"])["runtime"], attempt
        ),
        # a GPU for the MiniLM encoder (SLURM sets CUDA_VISIBLE_DEVICES)
        gpu=(
            RES.get("cluster", {}).get("gpus", 0)
            if config["clustering"]["embedding"] == "minilm"
            else 0
        ),
        nodes=1,
    params:
        cfg=lambda wildcards: config["clustering"]
        | {"n_clusters": study.n_clusters(config, wildcards.dataset)},
    script:
        "../workflow_scripts/cluster.py"


rule select:
    input:
        unpack(subset_inputs),
    output:
        "results/subsets/{dataset}/{selector}/{subset}.json",
    log:
        "results/logs/select/{dataset}/{selector}/{subset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        options=lambda wildcards: study.select_options(config, wildcards.subset),
    script:
        "../workflow_scripts/select.py"
