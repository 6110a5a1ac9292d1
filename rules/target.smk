# a target's fine-tune on a subset or, for a full_seed<N> reference, on all the data; its checkpoint is
# temporary unless keep.targets (deleted once its own evaluate job has run)
rule finetune_target:
    input:
        unpack(finetune_inputs),
    output:
        model=checkpoint(
            "results/targets/{dataset}/{target}/{selector}/{subset}", KEEP["targets"]
        ),
        ledger="results/ledger/finetune_target/{dataset}/{target}/{selector}/{subset}.json",
        # the Trainer's loss log, laid out as results/ledger/; the model folder that also holds it is temporary
        loss_curve="results/loss_curves/finetune_target/{dataset}/{target}/{selector}/{subset}.json",
    log:
        "results/logs/finetune_target/{dataset}/{target}/{selector}/{subset}.log",
    benchmark:
        "results/benchmarks/finetune_target/{dataset}/{target}/{selector}/{subset}.tsv"
    wildcard_constraints:
        subset=f"full_seed[0-9]+|{SUBSET_PATTERN}",
    # the full-data references first: the longest fine-tunes, and every comparison waits on them
    priority: full_reference_first
    conda:
        "../envs/model.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("train", "mem_mb"),
        runtime=sized("train", "runtime"),
        gpu=sized("train", "gpus"),
        nodes=1,
        gpu_model=sized("train", "gpu_model"),
        cpus_per_gpu=sized("train", "cpus_per_gpu"),
    params:
        # what changes the result; memory, speed and logging knobs (study.training_knobs) are read
        # from the config by the script, so changing them reruns nothing
        hp=study.result_settings(config, "training"),
        seed=lambda wildcards: study.training_seed(wildcards.subset),
        state="results/.state/finetune_target/{dataset}/{target}/{selector}/{subset}",
    script:
        "../workflow_scripts/train.py"
