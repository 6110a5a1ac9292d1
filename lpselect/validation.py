"""A study's config checked before any job starts: the JSON schema first, then what a schema cannot say
(cross-references between keys, renamed keys, recipes, batch sizes); each error names the key."""

from pathlib import Path

import jsonschema
import yaml

from . import study
from .schema import SCHEMA, ConfigError, defaulted, parsed_schema
from .selection import chunks_for, fraction_error

def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_config(config: dict, schema_path=SCHEMA) -> None:
    _check_renamed(config)
    schema = parsed_schema(schema_path)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        if err.validator == "required":
            missing = err.message.split("'")[1]
            raise ConfigError(f"config key {_key([*err.path, missing])} is missing")
        if list(err.path)[:2] == ["evaluation", "eval_sets"] and err.validator in ("oneOf", "not"):
            raise ConfigError(f"config key {_key(err.path)}: a set needs exactly one of path or hub "
                              f"(the held-out split, name {study.HELDOUT}, takes neither)")
        raise ConfigError(f"config key {_key(err.path)}: {err.message}{WHY.get((tuple(err.path), err.validator), '')}")
    if "dumps" not in config:
        _check_recipes(config, schema)
    _check_references(config)


# why a schema rule holds, where its bare message ("1 is less than the minimum of 2") does not say
WHY = {
    (("training", "epochs"), "minimum"): (
        ": LP(1) = (P_0 - P_1) / (P_0 - P_n) needs at least two epochs (with n = 1 it is 1 for every row); "
        "for a one-epoch signal use grid.methods [lp_app] = (P_0 - P_1) / P_0: the proxy then trains only the "
        "first epoch of its n-epoch schedule"),
}


def _check_recipes(config: dict, schema: dict) -> None:
    """A proxy recipe (models.<name>.from) derives from a plain model, overrides real training keys
    with valid values, and trains only as a scoring model (a target fine-tunes with the training section)."""
    models, keys = config["models"], schema["properties"]["training"]["properties"]
    defs = {"$defs": schema.get("$defs", {})}  # the keys' schemas refer to the shared definitions
    for name, spec in models.items():
        if "from" not in spec:
            if "training" in spec:
                raise ConfigError(f"config key models.{name}.training: only a proxy recipe has training overrides; "
                                  f"write `{name}: {{from: <model>, training: {{...}}}}`")
            continue
        base = spec["from"]
        if base not in models:
            raise ConfigError(f"config key models.{name}.from: unknown model {base!r} (not under models)")
        if "from" in models[base]:
            raise ConfigError(f"config key models.{name}.from: {base!r} is itself a recipe (from "
                              f"{models[base]['from']!r}); derive from {models[base]['from']!r} with both overrides")
        for key, value in spec["training"].items():
            _check_override(name, key, value, keys, defs)
        if "seed" in spec["training"] and defaulted(config, "grid")["proxy_seeds"]:
            raise ConfigError(f"config key models.{name}.training.seed: grid.proxy_seeds trains every proxy once "
                              "per grid seed, with that seed; drop one or the other")
    for i, name in enumerate(config["grid"]["targets"]):
        if "from" in models.get(name, {}):
            raise ConfigError(f"config key grid.targets[{i}]: {name!r} is a proxy recipe (models.{name}.from); "
                              f"a target fine-tunes with the training section: name {models[name]['from']!r}")


def _check_override(name: str, key: str, value, keys: dict, defs: dict) -> None:
    where = f"config key models.{name}.training.{key}"
    if key == "epochs":
        # every run's LP(1) reads the same epochs 0..n: the rules' outputs are the study's epoch list
        raise ConfigError(f"{where}: a recipe trains the study's training.epochs schedule (every proxy's "
                          "LP(1) reads the same epochs); vary the epochs between studies")
    if key == "seed":
        schema = {"type": "integer", "minimum": 0}
    elif key in keys:
        schema = keys[key]
    else:
        raise ConfigError(f"{where}: not a training key (one of seed, {', '.join(k for k in keys if k != 'epochs')})")
    error = next(iter(jsonschema.Draft202012Validator(defs | schema).iter_errors(value)), None)
    if error:
        raise ConfigError(f"{where}: {error.message}")


def _check_renamed(config: dict) -> None:
    """Keys an older config may still use: one error that says how to write them now."""
    extraction = config.get("extraction")
    if isinstance(extraction, dict) and "bf16" in extraction:
        raise ConfigError(
            "config key extraction.bf16: replaced by extraction.precision (fp32, tf32 or bf16); write "
            f"`precision: {'bf16' if extraction['bf16'] else 'fp32'}`")
    evaluation = config.get("evaluation")
    if isinstance(evaluation, dict) and "eval_set" in evaluation:
        old = evaluation["eval_set"]
        name = old.get("name", "<name>") if isinstance(old, dict) else "<name>"
        raise ConfigError(
            "config key evaluation.eval_set: replaced by evaluation.eval_sets, a list of sets; write "
            f"`eval_sets: [{{name: {name}, ...the same keys...}}]`, and add `{{name: {study.HELDOUT}}}` to the list "
            "to keep judging the held-out split too")


def _check_references(config: dict) -> None:
    if "dumps" in config:
        if "judge" in config:
            raise ConfigError("config key judge: a dumps study has no trained models to judge")
        models = config["dumps"]["models"]
        for i, pair in enumerate(config["dumps"]["pairs"]):
            for j, name in enumerate(pair):
                if name not in models:
                    raise ConfigError(f"config key dumps.pairs[{i}][{j}]: unknown model {name!r} (not in dumps.models)")
        return
    if "by_model_size" not in config["resources"]:
        raise ConfigError("config key resources.by_model_size is missing")
    grid, models, datasets = config["grid"], config["models"], config["datasets"]
    for role in ("proxies", "targets", "diagnostic_models"):
        for i, name in enumerate(grid.get(role, [])):
            if name not in models:
                raise ConfigError(f"config key grid.{role}[{i}]: unknown model {name!r} (not under models)")
    for i, name in enumerate(grid["datasets"]):
        if name not in datasets:
            raise ConfigError(f"config key grid.datasets[{i}]: unknown dataset {name!r} (not under datasets)")
    _check_fractions(grid["fractions"])
    _check_parts(grid)
    for name, spec in datasets.items():
        _check_facts(f"datasets.{name}", spec)
        _check_format(config, name, spec)
    _check_chat_templates(config)
    _check_chat_ifd(config)
    for i, method in enumerate(grid["thirds"]):
        if method == "random":
            raise ConfigError(f"config key grid.thirds[{i}]: thirds need a score method, not 'random'")
    fresh = [m for m, spec in models.items() if spec.get("source") == "fresh"]
    if fresh and "fresh_models" not in config:
        raise ConfigError(f"config key fresh_models is missing (needed by fresh model {fresh[0]!r})")
    if fresh and config["fresh_models"]["tokenizer_dataset"] not in datasets:
        raise ConfigError("config key fresh_models.tokenizer_dataset: must name a dataset under datasets")
    if models.get("fresh", {"source": "fresh"}).get("source") != "fresh":
        raise ConfigError("config key models.fresh: the name 'fresh' is reserved for the fresh models' shared "
                          "tokenizer (results/tokenized/<dataset>/fresh); rename the model")
    ifd_epoch = study.method_settings(config)["ifd"]["epoch"]
    if ifd_epoch > config["training"]["epochs"]:
        raise ConfigError(f"config key methods.ifd.epoch: {ifd_epoch} is after the proxy's last epoch "
                          f"(training.epochs = {config['training']['epochs']})")
    _check_batch(config)
    _check_eval_sets(config)


def _check_eval_sets(config: dict) -> None:
    names = [s["name"] for s in study.eval_sets(config)]
    pooled = config.get("evaluation", {}).get("pooled_sets")
    for name in pooled if isinstance(pooled, list) else []:
        if name not in names:
            raise ConfigError(f"config key evaluation.pooled_sets: {name!r} is not an evaluation set "
                              f"(evaluation.eval_sets names {', '.join(names)})")
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"config key evaluation.eval_sets[{i}]: the name {name!r} is used twice")
    for i, name in enumerate((config.get("judge") or {}).get("sets") or []):
        if name not in names:
            raise ConfigError(f"config key judge.sets[{i}]: {name!r} is not an evaluation set "
                              f"(evaluation.eval_sets: {', '.join(names)})")


def _check_facts(key: str, spec: dict) -> None:
    """A generated held-out split of the facts kind asks the same number of facts per level."""
    if spec.get("source") != "synthetic" or spec.get("kind") != "facts":
        return
    levels = len(spec["repeats"])
    if spec["test_size"] % levels or spec["test_size"] // levels > spec["n_per_level"]:
        raise ConfigError(f"config key {key}.test_size: {spec['test_size']} must be a multiple of the "
                          f"{levels} levels and at most n_per_level x levels = {spec['n_per_level'] * levels}")


def _check_format(config: dict, name: str, spec: dict) -> None:
    """Chat rows are built with the models' chat templates, so they need a chat prompt_template."""
    fmt = spec.get("format", "alpaca")
    if fmt != "alpaca" and spec["source"] == "synthetic":
        raise ConfigError(f"config key datasets.{name}.format: generated rows are alpaca rows, not {fmt}")
    if fmt != "alpaca" and not config["prompt_template"].startswith("chat"):
        raise ConfigError(f"config key prompt_template: datasets.{name} has {fmt} rows, which need the models' "
                          f"chat templates: set prompt_template: chat (loss on every assistant turn) or chat_last")


def _check_chat_ifd(config: dict) -> None:
    """IFD compares one response's loss with and without its prompt; under prompt_template chat every
    assistant turn of a conversation is scored, and they would be pooled into one "response"."""
    grid = config["grid"]
    chat = [d for d in grid["datasets"] if config["datasets"][d].get("format", "alpaca") != "alpaca"]
    for key in ("methods", "thirds"):
        if config["prompt_template"] == "chat" and chat and "ifd" in grid[key]:
            raise ConfigError(f"config key grid.{key}: ifd is defined for one response, but under prompt_template: "
                              f"chat the conversations of datasets.{chat[0]} are scored on every assistant turn; "
                              "use prompt_template: chat_last (the loss on the last assistant turn) or drop ifd")


def _check_chat_templates(config: dict) -> None:
    """With a chat prompt_template, a pretrained model in a local folder must carry a chat template (a
    hub model or a packaged GGUF file is checked by the first job that loads its tokenizer)."""
    if not config["prompt_template"].startswith("chat"):
        return
    for name, spec in config["models"].items():
        folder = Path(spec.get("path", "")) if spec.get("source") == "pretrained" else None
        if folder is None or not (folder / "tokenizer_config.json").is_file():
            continue
        has = (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file() or bool(
            yaml.safe_load((folder / "tokenizer_config.json").read_text()).get("chat_template"))
        if not has:
            raise ConfigError(f"config key models.{name}: its tokenizer ({folder}) has no chat template, which "
                              f"prompt_template: {config['prompt_template']} needs (use an instruction-tuned model "
                              "or alpaca rows with prompt_template: alpaca)")


def _check_batch(config: dict) -> None:
    """Every model must reach training.global_batch_size with whole accumulation steps on the GPU
    count its resources row gives it (one process per GPU), so no job fails after it has started."""
    for name in dict.fromkeys(study.scoring_models(config["grid"]) + config["grid"]["targets"]):
        hp = config["training"] | study.recipe_training(config, name)  # a proxy recipe's own batch sizes
        key = f"models.{name}.training" if study.recipe_training(config, name).keys() & {"batch_size", "global_batch_size"} \
            else "training"
        gpus = study.size_resources(config, name, "train")["gpus"]
        per_step = hp["batch_size"] * max(1, gpus)
        if hp["global_batch_size"] % per_step:
            raise ConfigError(
                f"config key {key}.global_batch_size: {hp['global_batch_size']} is not a multiple of "
                f"training.batch_size x processes = {hp['batch_size']} x {max(1, gpus)} for model {name!r} "
                f"({gpus} GPUs in resources.by_model_size)"
            )


def _check_fractions(fractions) -> None:
    """Each fraction must name the k-chunk share it selects, and no two may select the same rows."""
    seen = {}
    for i, fraction in enumerate(fractions):
        why = fraction_error(fraction)
        if why:
            raise ConfigError(f"config key grid.fractions[{i}]: {why}")
        k = chunks_for(fraction)
        if k in seen:
            raise ConfigError(f"config key grid.fractions[{i}]: {fraction} selects the same rows as "
                              f"grid.fractions[{seen[k]}] = {fractions[seen[k]]} (both the first of {k} chunks)")
        seen[k] = i


def _check_parts(grid: dict) -> None:
    """Refuse, before any job, the parts whose select job would fail after the proxies trained (s2l
    does not rank, so it has no easy or mid end) or that repeat another part's set (at an even k the
    middle chunk is not central; at k = 2 it is the easy half)."""
    for key in ("parts", "diagnostic_parts"):
        for i, part in enumerate(grid.get(key, ["hard"])):
            if part != "hard" and "s2l" in grid["methods"]:
                raise ConfigError(f"config key grid.{key}[{i}]: s2l (grid.methods[{grid['methods'].index('s2l')}]) "
                                  f"does not rank the rows, so it has no {part} part; train s2l in a study with "
                                  f"{key} [hard]")
            if part == "mid":
                for j, fraction in enumerate(grid["fractions"]):
                    if chunks_for(fraction) % 2 == 0:
                        raise ConfigError(f"config key grid.{key}[{i}]: mid needs an odd k; grid.fractions[{j}] = "
                                          f"{fraction} has k = {chunks_for(fraction)}, whose middle chunk is not central")


def load_config(path) -> dict:
    config = yaml.safe_load(Path(path).read_text())
    validate_config(config)
    return config
