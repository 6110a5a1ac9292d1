"""A study's grid: the models, proxy runs, subsets, evaluation sets and figures a validated config asks
for, and the settings that change each job's result (lpselect.validation checks the config first)."""

from itertools import product

from .schema import defaulted
from .selection import PARTS, PROXY_FREE, Subset, chunks_for, full_reference, full_reference_seed


def base_model(config: dict, name: str) -> str:
    """The model whose prepared folder and tokenization a model uses: a recipe's `from`, else itself."""
    return config["models"][name].get("from", name)


def model_spec(config: dict, name: str) -> dict:
    """A model's source spec (a recipe's is its base model's)."""
    return config["models"][base_model(config, name)]


def recipe_training(config: dict, name: str) -> dict:
    """A recipe's training overrides (empty for a plain model); `seed` among them replaces the run's seed."""
    return config["models"][name].get("training", {})


def proxy_hp(config: dict, name: str) -> dict:
    """The training settings that change a proxy's result (train_proxy's params): the study's with
    the model's recipe overrides; the knobs among them go to training_knobs instead."""
    overrides = {k: v for k, v in recipe_training(config, name).items()
                 if k != "seed" and k not in NOT_RESULTS["training"]}
    return result_settings(config, "training") | overrides


def recipe_seed(config: dict, name: str, seed: int) -> int:
    """A proxy run's training seed: the recipe's own `seed` override, else the run's."""
    return recipe_training(config, name).get("seed", seed)


def recipes(config: dict) -> dict:
    """{model: {base, settings, seed}} of every scoring model whose base has a proxy recipe (the base
    model included: the study's own recipe): what the robustness table compares. `settings` are the
    training settings that change the result, without the seed; two runs with equal settings are two
    seeds of one recipe."""
    models = scoring_models(config["grid"])
    bases = {base_model(config, m) for m in models if "from" in config["models"][m]}
    return {m: {"base": base_model(config, m), "settings": proxy_hp(config, m),
                "seed": recipe_seed(config, m, config["seed"])}
            for m in models if base_model(config, m) in bases}


def scoring_models(grid: dict) -> list[str]:
    """Every model that scores the rows: the proxies, then the diagnostic-only models."""
    return list(dict.fromkeys(grid["proxies"] + grid.get("diagnostic_models", [])))


def diagnostic_subsets(grid: dict) -> list[tuple[str, str]]:
    """(model, subset) of the hard subset (and the parts grid.diagnostic_parts asks for) every scoring
    model selects per method, k and seed: what the transfer diagnostic compares (no target is trained
    on the diagnostic models' picks)."""
    every = grid | {"proxies": scoring_models(grid), "thirds": [], "parts": grid.get("diagnostic_parts", ["hard"])}
    return [(sel, sub) for sel, sub in subsets(every) if sel != "none"]


def pool_model(grid: dict, selector: str) -> str:
    """The model whose score table's scorable rows a selection's budget is counted on: its selector,
    or for the proxy-free methods (selector 'none': random, length) the first proxy, the one the
    method comparison reads, so that clust_rand has the budget and the pool of its selections."""
    return grid["proxies"][0] if selector == "none" else selector


def uses_clusters(grid: dict, subset: Subset) -> bool:
    """The semantic clusters: the cluster scheme's groups, and s2l's budget (that of the same k's
    clust_rand) in a study with the cluster scheme."""
    return subset.scheme == "cluster" or (subset.method == "s2l" and "cluster" in grid["schemes"])


def proxy_seeded(config: dict) -> bool:
    """grid.proxy_seeds: one training run of every scoring model per grid seed."""
    return defaulted(config, "grid")["proxy_seeds"]


def proxy_run(config: dict, seed: int | None) -> str:
    """The path part that names the proxy run a subset of `seed` reads: "" for the one run with the
    study seed, "/seed<N>" with grid.proxy_seeds (results/scores/<dataset>/<proxy><run>.csv)."""
    return f"/seed{seed}" if seed is not None and proxy_seeded(config) else ""


def proxy_run_seed(config: dict, run: str) -> int:
    """The training seed of a proxy run (proxy_run's inverse): its grid seed, or the study seed."""
    return int(run.removeprefix("/seed")) if run else config["seed"]


def proxy_runs(config: dict, models) -> list[str]:
    """Every run of `models` a study trains, as "<model><run>" (a score table's name, say)."""
    seeds = config["grid"]["seeds"] if proxy_seeded(config) else [None]
    return list(dict.fromkeys(f"{m}{proxy_run(config, s)}" for m in models for s in seeds))


def selectors(grid: dict, method: str) -> list[str]:
    """Who ranks the rows for a method: every proxy, or nobody ('none') for random and length."""
    return ["none"] if method in PROXY_FREE else list(grid["proxies"])


def schemes(grid: dict, method: str) -> list[str]:
    """s2l samples over clusters of its own (loss trajectories), not the semantic ones: it runs once,
    named under the global scheme, whatever grid.schemes says."""
    return ["global"] if method == "s2l" else list(grid["schemes"])


def budgets(grid: dict) -> list[tuple[int, int]]:
    """(chunks, size) of every budget: a share 1/k of grid.fractions, or a row count of grid.sizes."""
    return [(chunks_for(f), 0) for f in grid["fractions"]] + [(0, n) for n in grid.get("sizes", [])]


def subsets(grid: dict) -> list[tuple[str, str]]:
    """Every (selector, subset name) of the grid. Names say what determines the rows, so a fraction
    and a third that select the same rows are one."""
    out = set()
    for method, (chunks, size), seed in product(grid["methods"], budgets(grid), grid["seeds"]):
        # random has no easy end: its other parts would be more random draws of the same size
        parts = ["hard"] if method == "random" else grid.get("parts", ["hard"])
        for scheme, selector, part in product(schemes(grid, method), selectors(grid, method), parts):
            out.add((selector, Subset(method, scheme, chunks, part, seed, size).name))
    for method, scheme, part, seed in product(grid["thirds"], grid["schemes"], PARTS, grid["seeds"]):
        out.update((sel, Subset(method, scheme, 3, part, seed).name) for sel in selectors(grid, method))
    return sorted(out)


def proxy_epochs(config: dict) -> int:
    """How many epochs of its training.epochs schedule a proxy trains (and is extracted after): every
    one for lp1 and s2l, the first for lp_app, IFD's epoch, none for ppl0, length and random."""
    grid, n = config["grid"], config["training"]["epochs"]
    needs = {"lp1": n, "s2l": n, "lp_app": 1, "ifd": method_settings(config)["ifd"]["epoch"]}
    return max([needs.get(m, 0) for m in set(grid["methods"]) | set(grid["thirds"])], default=0)


def figures(config: dict, dataset: str) -> list[str]:
    """The figures of a training study on `dataset` that it has the data for, so that none is drawn as a
    placeholder: curves over the fraction need two or more fractions, the thirds figure easy, mid and
    hard parts of k = 3, the transfer figures two or more scoring models, the trajectories a trained
    proxy, the gain over random both lp1 and random, the composition a generated dataset (the only kind
    with known difficulty levels), the judged figures a judge."""
    grid = config["grid"]
    ks = {chunks_for(f) for f in grid["fractions"]} | {f"n{n}" for n in grid.get("sizes", [])}
    methods, parts = set(grid["methods"]), set(grid.get("parts", ["hard"]))
    trained = proxy_epochs(config) >= 1
    several = len(scoring_models(grid)) >= 2
    judged = bool((config.get("judge") or {}).get("enabled"))
    has_data = {
        "metric_vs_fraction": len(ks) >= 2,
        "transfer_heatmap": {"lp1", "random"} <= methods,
        "rank_correlation": several and trained,
        "trajectories": trained,
        "composition": config["datasets"][dataset]["source"] == "synthetic",
        "compute_cost": True,
        "fraction_to_parity": len(ks) >= 2,
        "thirds": bool(grid["thirds"]) or (3 in ks and parts >= set(PARTS)),
        # total compute (selection and fine-tune) against the random frontier
        "worth": True,
        "method_comparison": len(methods) >= 2,
        "same_size": True,
        "transfer": several,
        # with an LLM judge: its win rates per evaluation set; parity needs a curve over the fraction
        "judged_vs_fraction": judged,
        "judged_parity": judged and len(ks) >= 2,
        # proxy recipes (models.<name>.from) against each other, across seeds and against the target
        "robustness": len(recipes(config)) >= 2,
    }
    return [name for name, drawn in has_data.items() if drawn]


def select_options(config: dict, subset: str) -> dict:
    """The settings a subset's selection depends on (only its own method's, so that changing one
    method's settings reruns that method's selections alone)."""
    method, settings = Subset.parse(subset).method, method_settings(config)
    if method == "ifd":
        return {"drop_ifd_above_one": settings["ifd"]["drop_above_one"]}
    if method == "s2l":
        return {"s2l_clusters": settings["s2l"]["n_clusters"]}
    return {}


# the evaluation set that is a dataset's own held-out split (its responses are evaluate's generations)
HELDOUT = "heldout"


def eval_sets(config: dict) -> list[dict]:
    """The study's evaluation sets (evaluation.eval_sets; the schema's default: the held-out split)."""
    return defaulted(config, "evaluation")["eval_sets"]


def judged_sets(config: dict) -> list[str]:
    """The evaluation sets the judge compares models on, sorted by name: judge.sets, or every
    evaluation set when it is absent; none without a judge."""
    judge = config.get("judge") or {}
    if not judge.get("enabled"):
        return []
    names = [s["name"] for s in eval_sets(config)]
    return sorted(judge["sets"] if judge.get("sets") is not None else names)


def response_sets(config: dict) -> list[str]:
    """The evaluation sets every evaluated model answers, sorted by name (so that reordering
    evaluation.eval_sets changes no job): every named set; the held-out split when evaluate generates
    anyway or the judge reads it."""
    generate = config["evaluation"]["generate"]
    return sorted(s["name"] for s in eval_sets(config)
                  if s["name"] != HELDOUT or generate or HELDOUT in judged_sets(config))


def pooled_sets(config: dict) -> list[str]:
    """The evaluation sets whose prompts the headline judge win rate pools (evaluation.pooled_sets):
    absent, every set but the held-out split (the protocol of the paper and its peers: the held-out
    split is in-distribution), or the held-out split when it is the only set; `all`, every set. Sorted by
    name, as the sets' jobs are: reordering evaluation.eval_sets changes no job."""
    names = sorted(s["name"] for s in eval_sets(config))
    chosen = config.get("evaluation", {}).get("pooled_sets")
    if chosen == "all":
        return names
    if chosen is not None:
        return [n for n in names if n in chosen]
    return [n for n in names if n != HELDOUT] or names


def method_settings(config: dict) -> dict:
    return defaulted(config, "methods")


# Settings that do not change the result of the rules that read them (speed, logging; the tie tolerance
# and evaluation set belong to other rules). Rules leave them out of their params (the scripts read them
# from the config), so changing one reruns nothing that does not depend on it.
NOT_RESULTS = {
    # gradient checkpointing trades memory for compute (same gradients), and the per-device batch size
    # only splits training.global_batch_size into micro-batches (the same samples per optimizer step);
    # sync_each_batch only chooses where FSDP accumulates the same gradients, a timeout is no result, and
    # padding-free batches hold the same samples in the same order with the same loss
    "training": ("logging_steps", "gradient_checkpointing", "batch_size", "sync_each_batch", "collective_timeout_s",
                 "padding_free"),
    "extraction": ("batch_size", "max_tokens", "share_prefix"),
    # how judged verdicts are pooled and combined (aggregate), and which training rows exist (prepare_dataset)
    "evaluation": ("tie_tolerance", "eval_sets", "batch_size", "pooled_sets", "tie_rule", "drop_leaked"),
}


def result_settings(config: dict, section: str) -> dict:
    """The settings of a config section that change a job's outputs (its rules' params)."""
    return {k: v for k, v in config[section].items() if k not in NOT_RESULTS[section]}


def training_knobs(config: dict, model: str) -> dict:
    """The training settings that change how a model's fine-tune runs but not its result (memory,
    speed, logging): read by the training scripts from the config, outside the params and the resume
    fingerprint, so changing one (say, gradient checkpointing after an OOM) reruns nothing. A size
    row's gradient_checkpointing overrides the training section's."""
    row = size_resources(config, model, "train")
    knobs = {k: v for k, v in defaulted(config, "training").items() if k in NOT_RESULTS["training"]}
    knobs |= {k: v for k, v in recipe_training(config, model).items() if k in NOT_RESULTS["training"]}
    return knobs | {k: row[k] for k in ("gradient_checkpointing",) if k in row}


def references(grid: dict) -> list[str]:
    """The reference models of every target: a full-data fine-tune per seed, and the untrained base."""
    return [full_reference(s) for s in grid["seeds"]] + (["base"] if "base" in grid["references"] else [])


def trained_models(grid: dict) -> list[tuple[str, str]]:
    """(selector, subset name) of every model evaluated per target, references included."""
    return [("none", r) for r in references(grid)] + subsets(grid)


def pairwise_reference(grid: dict, subset: str) -> str | None:
    """The full-data model a model is compared with: the one trained with the same seed (the base
    model, which has no seed, with the first seed's); None for the full-data models themselves."""
    if full_reference_seed(subset) is not None:
        return None
    seed = grid["seeds"][0] if subset == "base" else Subset.parse(subset).seed
    return full_reference(seed)


def training_seed(subset: str) -> int:
    """The seed a trained model's fine-tune runs with: its reference's or its subset's."""
    seed = full_reference_seed(subset)
    return Subset.parse(subset).seed if seed is None else seed


def n_clusters(config: dict, dataset: str) -> int:
    """The dataset's own cluster count, or the study's."""
    return config["datasets"][dataset].get("n_clusters", config["clustering"]["n_clusters"])


def model_parameters(config: dict, name: str) -> float | None:
    """A model's parameter count: declared (`parameters`), or estimated for a fresh decoder."""
    spec = model_spec(config, name)
    if "parameters" in spec:
        return float(spec["parameters"])
    if spec["source"] != "fresh":
        return None
    h, layers = spec["hidden_size"], spec["num_layers"]
    inter = spec.get("intermediate_size", 4 * h)
    return float(layers * (4 * h * h + 3 * h * inter) + config["fresh_models"]["vocab_size"] * h)


def retry_runtime(config: dict, minutes: int, attempt: int) -> int:
    """Minutes a job asks for at its `attempt`-th try: runtime x attempt (a retry after a TIMEOUT gets
    longer), never more than resources.max_runtime_min when set (a partition's MaxTime: sbatch rejects
    a longer request, and resuming from the last checkpoint makes one unnecessary)."""
    cap = config["resources"].get("max_runtime_min")
    return min(minutes * attempt, cap) if cap else minutes * attempt


def size_resources(config: dict, name: str, kind: str) -> dict:
    """threads, gpus, mem_mb and runtime of a `kind` (train | extract) job on model `name`: the first
    row of resources.by_model_size that fits the model (the last row for an unknown size)."""
    rows = config["resources"]["by_model_size"]
    n = model_parameters(config, name)
    row = next((r for r in rows if n is not None and n <= r["max_parameters"]), rows[-1])
    extras = {"gpu_model": row.get("gpu_model", ""), "cpus_per_gpu": row.get("cpus_per_gpu", 0)}
    extras |= {k: row[k] for k in ("gradient_checkpointing",) if k in row}
    return {"threads": row["threads"], "gpus": row["gpus"]} | extras | row[kind]
