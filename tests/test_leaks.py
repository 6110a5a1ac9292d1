"""No test prompt leaks into training: the leak check (exact and normalised matches between every
evaluation set and the training rows), evaluation.drop_leaked, and near duplicates kept on one side
of the held-out split."""

import json


from conftest import run_snakemake, shrunken_config
from lpselect import data, leaks, stages, summary
from lpselect.fileio import read_jsonl, write_jsonl


def alpaca(instruction, output="ok", input=""):
    return {"instruction": instruction, "input": input, "output": output}


def chat(*turns, system=None):
    roles = ["user", "assistant"] * len(turns)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": r, "content": c} for r, c in zip(roles, turns)]
    return {"messages": messages, "instruction": "", "input": "", "output": turns[-1]}


TRAIN = [
    alpaca("Write a haiku about rain."),
    alpaca("Name three primes.", input="below 10"),
    chat("How do I sort a list?", "Use sorted().", system="You are helpful."),
    # a ShareGPT conversation that opens with an evaluation question: it trains on its answer
    chat("What is the capital of France?", "Paris.", "And of Italy?", "Rome."),
    alpaca("Something else entirely."),
]


def test_leaks_counts_exact_and_normalised_matches():
    sets = {
        "vicuna": [alpaca("Write a haiku about rain."),  # exact
                   alpaca("write a  HAIKU about rain.\n"),  # normalised only
                   alpaca("Name three primes.\n\nbelow 10"),  # instruction and input, exact
                   alpaca("A new question.")],
        # chat prompts are compared without their system prompt, and with any user turn of a training row
        "koala": [chat("How do I sort a list?", "", system="Other system prompt."),
                  alpaca("what is the capital of france?")],
    }
    got = leaks.count(TRAIN, sets)
    assert got["sets"] == [{"name": "vicuna", "n_prompts": 4, "exact": 2, "normalised": 3, "train_rows": 2},
                           {"name": "koala", "n_prompts": 2, "exact": 1, "normalised": 2, "train_rows": 2}]
    assert got["n_train"] == 5 and got["train_rows_any"] == 4
    kept, dropped = leaks.drop(TRAIN, [r for rows in sets.values() for r in rows])
    assert dropped == 4 and kept == [TRAIN[4]]
    assert leaks.count(kept, sets)["train_rows_any"] == 0


def test_near_duplicates_never_straddle_the_held_out_split():
    """The same normalised question and answer (a chat row: under any system prompt) is one group."""
    rows = []
    for i in range(30):
        rows.append({"id": f"a{i}", **alpaca(f"Question {i}?", f"Answer {i}.")})
        rows.append({"id": f"b{i}", **alpaca(f"  question {i}? ", f"ANSWER {i}.")})
        rows.append({"id": f"c{i}", **chat(f"Chat {i}", f"Reply {i}", system="Be brief.")})
        rows.append({"id": f"d{i}", **chat(f"chat {i}", f"reply  {i}", system="Be verbose.")})
    for seed in range(5):
        train, test = data.split_rows(rows, 30, seed)
        assert len(test) == 30
        held = {r["id"] for r in test}
        for i in range(30):
            assert (f"a{i}" in held) == (f"b{i}" in held) and (f"c{i}" in held) == (f"d{i}" in held)
    # a different answer is a different row
    assert data.near_duplicate_groups([alpaca("q", "a"), alpaca("Q", "b")]).tolist() == [0, 1]


def test_prepare_dataset_drops_leaked_rows_when_asked(tmp_path):
    source = tmp_path / "d.jsonl"
    write_jsonl(source, [alpaca(f"Prompt {i}", f"out {i}") for i in range(20)] + [alpaca("Prompt 3", "another")])
    write_jsonl(tmp_path / "vicuna.jsonl", [alpaca("prompt 5"), alpaca("Not there")])
    spec = {"source": "local", "path": str(source), "test_size": 4, "seed": 0}
    out = {k: tmp_path / f"{k}.json" for k in ("train", "test", "stats")}
    stages.prepare_dataset("d", spec, out["train"], out["test"], out["stats"])
    before = read_jsonl(out["train"])
    assert "leaked_dropped" not in json.loads(out["stats"].read_text())
    stages.prepare_dataset("d", spec, out["train"], out["test"], out["stats"], [tmp_path / "vicuna.jsonl"])
    after, test, stats = read_jsonl(out["train"]), read_jsonl(out["test"]), json.loads(out["stats"].read_text())
    held = {leaks.normalise(r["instruction"]) for r in test} | {"prompt 5"}
    expected = [r for r in before if leaks.normalise(r["instruction"]) not in held]
    assert after == expected and stats["leaked_dropped"] == len(before) - len(after) > 0
    assert stats["n_train"] == len(after)


def test_leak_check_job_and_drop_leaked_in_a_run(workdir):
    """A real run of prepare_dataset, prepare_eval_set and leak_check: the counts, the summary's
    warning, and evaluation.drop_leaked removing the matches from the training split (counted)."""
    config = shrunken_config()
    run_snakemake(workdir, config, "--cores", "1", "results/datasets/synth/train.jsonl")
    train = read_jsonl(workdir / "results/datasets/synth/train.jsonl")
    prompts = [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "") for r in train]
    write_jsonl(workdir / "vicuna.jsonl", [alpaca(prompts[0]), alpaca(prompts[1].upper()), alpaca("Not in training")])
    config["evaluation"]["eval_sets"] = [{"name": "heldout"}, {"name": "vicuna", "path": "vicuna.jsonl"}]
    run_snakemake(workdir, config, "--cores", "1", "results/datasets/synth/leaks.json")
    got = json.loads((workdir / "results/datasets/synth/leaks.json").read_text())
    heldout, vicuna = got["sets"]  # the study's order
    assert vicuna["name"] == "vicuna" and vicuna["exact"] == 1 and vicuna["normalised"] == 2
    assert heldout["normalised"] == 0  # the split keeps a prompt's duplicates on one side
    stats = json.loads((workdir / "results/datasets/synth/stats.json").read_text())
    warning = summary.leak_lines(got, stats)
    assert "Warning: 2 of 3 vicuna prompts appear in the training rows" in warning[0]
    # drop_leaked: prepare_dataset reads the named sets and reruns; nothing of them is left to train on
    config["evaluation"]["drop_leaked"] = True
    out = run_snakemake(workdir, config, "--cores", "1", "results/datasets/synth/leaks.json").stderr
    assert "prepare_dataset" in out
    got = json.loads((workdir / "results/datasets/synth/leaks.json").read_text())
    stats = json.loads((workdir / "results/datasets/synth/stats.json").read_text())
    assert got["sets"][1]["normalised"] == 0 and got["train_rows_any"] == 0
    assert stats["leaked_dropped"] >= 2 and stats["n_train"] == len(train) - stats["leaked_dropped"]
    assert "Dropped" in summary.leak_lines(got, stats)[0]
