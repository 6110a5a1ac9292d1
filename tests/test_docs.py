"""The documentation: the site builds strictly, the configuration reference covers the schema, and every
shell command of README.md, CONTRIBUTING.md and docs/ runs (as a dry run where it would run for real).

A command is taken from each fenced ```bash / ```sh block, one per line (a trailing backslash continues
it, `#` starts a comment). How each kind is checked, cheapest first:

- `make <target> [VAR=x]`: the target exists in the Makefile and `make -n` expands it; its recipe's
  snakemake and python lines are then checked like the documented ones below.
- `.venv/bin/snakemake ...`: run with `-n` (a dry run: Snakemake builds the whole job graph, validates
  the config and the profile, runs nothing), each distinct graph once.
- `.venv/bin/python <script>` / `-m <module>`: every `--option` is one the script's argparse defines
  (read from its source, no import: a benchmark imports torch) and every config or data path exists;
  the few modules that run in a second run for real.
- `.venv/bin/python -c "..."`: compiles, and every `module.function(...)` it calls binds to the
  function's signature.
- `.venv/bin/<tool> <subcommand>`: the tool's `--help` for that subcommand names every option.

Everything runs in a scratch copy of the checkout (links to its files, its own results/), so a test never
writes into the checkout, and `../shared` resolves as in a clone beside it. A command of a kind not
listed fails the test: teach it here rather than leave a documented command unchecked.
"""

import ast
import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED, silent_slurm

pytestmark = pytest.mark.xdist_group("docs")

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"] + sorted(
    p for p in DOCS.rglob("*.md") if "_incoming" not in p.parts)
# placeholders the pages use, and what a test puts in their place (a cheap study for `<study>`)
PLACEHOLDERS = {"<study>": "real-small", "<account>": "lab", "<partition>": "debug"}
# modules quick enough to run for real (reading a config, writing a small file)
RUN_FOR_REAL = {"lpselect.chat_example", "lpselect.memory", "lpselect.schema_doc"}
# as from a user's shell: under `make test` the inherited MAKEFLAGS/MAKELEVEL (and the SLURM=yes make exports)
# would change what `make -n` prints
ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "SLURM")} | {
    "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
MKDOCS = ROOT / ".venv/bin/mkdocs"


def shell_commands(text: str) -> list[str]:
    """Every command line of the fenced bash/sh blocks of a Markdown text, comments dropped."""
    commands, block, pending = [], False, ""
    for line in text.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            block = not block and fence[3:].strip() in ("bash", "sh", "shell", "console")
            continue
        if not block:
            continue
        line = pending + re.sub(r"(^|\s)#.*$", "", line).strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if line:
            commands.append(line)
    return commands


def documented() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for command in shell_commands(page.read_text()):
            for key, value in PLACEHOLDERS.items():
                command = command.replace(key, value)
            out.append((str(page.relative_to(ROOT)), command))
    return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A scratch checkout: every top-level entry linked, its own results/, ../shared beside it."""
    base = tmp_path_factory.mktemp("docs")
    repo = base / "repo"
    repo.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"results", ".snakemake", "site", "my-chat.jsonl"}:
            (repo / entry.name).symlink_to(entry)
    (repo / "results").mkdir()
    (base / "shared").symlink_to(SHARED.resolve())
    # SLURM commands that answer at once (base/bin): the SLURM executor plugin probes sacct/scontrol when
    # Snakemake starts, which waits about 9 s on a machine with SLURM's clients but no controller answering
    silent_slurm(base)
    return repo


def run(args, cwd, timeout=300, env=ENV):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


# --- the site -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    assert MKDOCS.exists(), "mkdocs is not installed: `make install-docs` (requirements-docs.txt)"
    run([str(MKDOCS), "build", "--strict", "--site-dir", str(out)], ROOT)
    return out


def test_site_builds_strictly_with_every_page_and_image(site):
    """--strict turns every warning into a failure: a broken link or anchor, a page missing from the
    nav, an image that is not there."""
    assert (site / "index.html").exists()
    assert (site / "reference" / "configuration" / "index.html").exists()
    for page in PAGES[2:]:
        rel = page.relative_to(DOCS)
        html = site / ("index.html" if rel.name == "index.md" else rel.with_suffix("") / "index.html")
        assert html.exists(), f"{rel} built no page"
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", "".join(p.read_text() for p in PAGES[2:])):
        assert list(site.rglob(Path(image).name)), f"image {image} is not in the site"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The check can fail: the same site with one link to a missing page does not build."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in ["index.md", "getting-started.md"]:
        (docs / page).write_text("# x\n\nsee [nowhere](missing.md)\n" if page == "index.md" else "# y\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nstrict: true\nnav: [index.md, getting-started.md]\n")
    done = subprocess.run([str(MKDOCS), "build", "--strict"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "missing.md" in done.stderr


def schema_keys(node) -> set[str]:
    """Every property name anywhere in the schema, found independently of the renderer."""
    keys = set()
    if isinstance(node, dict):
        keys |= set(node.get("properties", {}))
        for value in node.values():
            keys |= schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            keys |= schema_keys(value)
    return keys


def test_configuration_reference_names_every_schema_key(site):
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    page = (site / "reference" / "configuration" / "index.html").read_text()
    cells = set(re.findall(r"<code>([^<]+)</code>", page))
    named = {part for cell in cells for part in re.split(r"[.\[\]]+", cell) if part}
    missing = sorted(schema_keys(schema) - named)
    assert not missing, f"keys of the schema missing from the configuration reference: {missing}"
    # the defaults come from the schema, e.g. evaluation.tie_rule's
    assert "alpagasus" in page and "evaluation.eval_sets[].split" in page


# --- the commands -------------------------------------------------------------------------------------

def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def expand(command: str, cwd) -> list[str]:
    """A documented command, with a make target replaced by its recipe's tool lines (`make -n`)."""
    words = shlex.split(command)
    if words[0] != "make":
        return [command]
    target = next(w for w in words[1:] if "=" not in w)
    assert target in makefile_targets(), f"`{command}`: no target {target} in the Makefile"
    recipe = run(["make", "-n", *words[1:]], cwd)
    return [line for line in recipe.splitlines() if line.startswith((".venv/bin/snakemake", ".venv/bin/python -m lpselect",
                                                                     ".venv/bin/mkdocs"))]


def argparse_options(source: str) -> set[str]:
    """The option strings a script's argparse defines, read from its source."""
    options = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            options |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return options | {"-h", "--help"}


def check_python(words: list[str], cwd) -> None:
    if words[1] == "-c":
        return check_python_code(words[2])
    if words[1:3] == ["-m", "pytest"]:
        for path in (w.split("::")[0] for w in words[3:] if w.startswith("tests/")):
            assert (cwd / path).exists(), f"`{shlex.join(words)}`: no {path}"
        return None
    if words[1] == "-m":
        module = words[2]
        spec = importlib.util.find_spec(module)
        assert spec and spec.origin, f"no module {module}"
        # a package (`python -m` runs its __main__) defines its options in any of its modules
        files = sorted(Path(spec.origin).parent.glob("*.py")) if spec.submodule_search_locations else [Path(spec.origin)]
        source, args = "\n".join(f.read_text() for f in files), words[3:]
        if module in RUN_FOR_REAL:
            run([str(ROOT / ".venv/bin/python"), *words[1:]], cwd)
    else:
        script = cwd / words[1]
        assert script.exists(), f"no script {words[1]}"
        source, args = script.read_text(), words[2:]
    defined = argparse_options(source)
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in defined, f"`{shlex.join(words)}`: {arg} is not an option of {words[1:3]}"
        elif arg.endswith((".yaml", ".py")) or arg.startswith(("configs/", "../shared/")):
            assert (cwd / arg).exists(), f"`{shlex.join(words)}`: no file {arg}"


def check_python_code(code: str) -> None:
    """Compile it, import what it imports, and bind every `name.function(...)` call to its signature."""
    tree = ast.parse(code)
    names = {}
    sys.path.insert(0, str(ROOT))
    try:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", None) in names:
                function = getattr(names[node.func.value.id], node.func.attr)
                args = [ast.literal_eval(a) for a in node.args]
                inspect.signature(function).bind(*args, **{k.arg: ast.literal_eval(k.value) for k in node.keywords})
    finally:
        sys.path.remove(str(ROOT))


def check_tool(words: list[str], cwd) -> None:
    """`.venv/bin/<tool> <subcommand> ... --options`: the subcommand's help names every option used."""
    env_free = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    tool = env_free[0]
    sub = env_free[1] if len(env_free) > 1 and not env_free[1].startswith("-") else None
    assert (cwd / tool).exists(), f"no {tool}"
    helptext = run([str(cwd / tool), *([sub] if sub else []), "--help"], cwd, timeout=120)
    for option in (w.split("=")[0] for w in env_free[2:] if w.startswith("--")):
        assert option in helptext, f"`{shlex.join(words)}`: {option} is not an option of {tool} {sub}"


def dry_run_key(words: list[str]) -> tuple:
    """What decides a dry run's job graph: the words without -n and the core and job counts."""
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("--cores", "--jobs", "-j", "-c"):
            skip = True
        elif word != "-n":
            out.append(word)
    return tuple(out)


# the paper grid's dry run through the SLURM profile (about 20 s of CPU): the session's shared run
# (tests/conftest.py's `paper_dry_run`)
PAPER = {"--configfile", "configs/paper.yaml", "--workflow-profile", "profiles/slurm"}


def dry_run(key: tuple, cwd, request) -> None:
    if set(key) == PAPER:
        request.getfixturevalue("paper_dry_run")
        return
    env = ENV | {"PATH": f"{cwd.parent / 'bin'}:{ENV['PATH']}", "SLURM_CALLS": str(cwd.parent / "calls.log")}
    run([str(cwd / ".venv/bin/snakemake"), "-n", *key], cwd, env=env)


def test_every_documented_command_runs_at_least_as_a_dry_run(clone, request):
    """Each documented command in order (a page's later commands may read what earlier ones wrote)."""
    commands = documented()
    assert any("select_only" in c for _, c in commands) and any(c.startswith("make run") for _, c in commands)
    seen = set()
    for page, command in commands:
        for line in expand(command, clone):
            words = shlex.split(line)
            prefix = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
            if prefix[0] == ".venv/bin/snakemake":
                key = dry_run_key(words[1:])
                if key not in seen:
                    seen.add(key)
                    dry_run(key, clone, request)
            elif prefix[0] == ".venv/bin/python":
                check_python(prefix, clone)
            elif prefix[0] == ".venv/bin/mkdocs":
                assert (ROOT / "mkdocs.yml").exists()  # the build itself: test_site_builds_strictly...
            elif prefix[0].startswith(".venv/bin/"):
                check_tool(words, clone)
            else:
                pytest.fail(f"{page}: `{command}`: no check for this kind of command in tests/test_docs.py")
    assert len(seen) >= 5, seen  # the studies' dry runs did run


def test_the_command_extractor_reads_continuations_and_comments():
    text = "x\n```bash\nmake run   # a comment\n.venv/bin/snakemake -n \\\n    --configfile a.yaml\n```\n```yaml\nk: v\n```\n"
    assert shell_commands(text) == ["make run", ".venv/bin/snakemake -n --configfile a.yaml"]


def test_readme_is_short_with_one_figure_and_links_only_to_existing_pages():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert len(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)) == 1
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        assert target.startswith("http") or (ROOT / target).exists(), f"README links to a missing {target}"
