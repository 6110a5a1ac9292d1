"""The plan as a Markdown report: compute per rule, peak disk, judge calls and the assumptions behind them."""

from .build import Plan
from .common import GENERATE_RULES, rule_order
from .cost import Cost
from .disk import CHECKPOINT_FOLDERS

def per_rule(costs: list[Cost]) -> dict:
    """{rule: totals} in the order the workflow defines its rules (a fixed order: the same plan renders
    the same report)."""
    out = {}
    position = rule_order()
    for c in sorted(costs, key=lambda c: position.get(c.rule, len(position))):
        r = out.setdefault(c.rule, {"jobs": 0, "gpus": set(), "tokens": 0.0, "flops": 0.0, "gpu_hours": 0.0,
                                    "longest_h": 0.0, "over_limit": 0, "nominal": 0, "idle_gpu_jobs": 0})
        r["jobs"] += 1
        r["gpus"].add(c.gpus)
        r["tokens"] += c.tokens
        r["flops"] += c.flops
        r["gpu_hours"] += c.gpu_hours
        r["longest_h"] = max(r["longest_h"], c.wall_s / 3600)
        r["over_limit"] += bool(c.runtime_min and c.wall_s > 60 * c.runtime_min)
        r["nominal"] += c.nominal
        r["idle_gpu_jobs"] += c.gpus > 0 and c.kind == "none"
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if x < 1e6 else f"{x:.2e}"


def _hours(x: float) -> str:
    return "0" if x == 0 else f"{x:,.1f}" if x >= 10 else f"{x:.2f}" if x >= 0.01 else f"{x:.1e}"


def _bytes(x: float) -> str:
    return f"{x / 1e12:,.2f} TB" if x >= 1e12 else f"{x / 1e9:,.1f} GB" if x >= 1e9 else f"{x / 1e6:,.1f} MB"


def _gpus(values: set) -> str:
    return "/".join(str(v) for v in sorted(values))


def render(p: Plan) -> str:
    rules = per_rule(p.costs)
    total_jobs = sum(r["jobs"] for r in rules.values())
    what = "every job of the study (--all)" if p.forceall else "jobs still to run"
    out = [f"# Cost plan: {p.config_path}", "",
           f"{total_jobs:,} {what}, from Snakemake's dry run (`snakemake -n --configfile {p.config_path}"
           f"{' --forceall' if p.forceall else ''}`); nothing was run.", "",
           "## Compute", "",
           "| rule | jobs | GPUs per job | tokens | FLOPs | GPU-hours | longest job (h) | judge API (USD) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    j = p.judge
    for rule, r in rules.items():
        costed = r["flops"] > 0
        cells = [_num(r["tokens"]), f"{r['flops']:.2e}", _hours(r["gpu_hours"]), _hours(r["longest_h"]), "-"]
        cells = cells if costed else ["-"] * 5
        if rule == "judge" and j["enabled"] and "total_usd" in j:  # input and output tokens of its calls
            cells = [_num(j["total_tokens"]), "-", "-", "-", f"{j['total_usd']:,.0f}"]
        out.append(f"| {rule} | {r['jobs']:,} | {_gpus(r['gpus'])} | " + " | ".join(cells) + " |")
    total_flops = sum(r["flops"] for r in rules.values())
    total_gpu_h = sum(r["gpu_hours"] for r in rules.values())
    usd = f"**{j['total_usd']:,.0f}**" if j["enabled"] and "total_usd" in j else "0"
    out.append(f"| **total** | **{total_jobs:,}** | | | **{total_flops:.2e}** | **{_hours(total_gpu_h)}** | | {usd} |")
    out += [""]
    loads = [c for c in p.costs if c.load_bytes]
    notes = [f"Model loading (in the GPU-hours above): {len(loads):,} jobs read {_bytes(sum(c.load_bytes for c in loads))} "
             f"of model folders at {p.plan['load_bandwidth']:.3g} B/s (plan.load_bandwidth), "
             f"{_hours(sum(c.load_s * c.gpus for c in loads) / 3600)} GPU-hours."] if loads else []
    for rule, r in rules.items():
        if r["over_limit"]:
            notes.append(f"**{r['over_limit']:,} {rule} job(s) are estimated to run longer than their runtime "
                         f"limit** (resources.by_model_size; a retry gets runtime x attempt).")
        if r["idle_gpu_jobs"]:
            notes.append(f"{rule}: {r['idle_gpu_jobs']:,} job(s) request {_gpus(r['gpus'] - {0})} GPU(s) but run no "
                         f"model computation here (not counted above; each still holds its GPUs while it runs).")
        if r["flops"] > 0 and 0 in r["gpus"]:
            notes.append(f"{rule}: jobs without GPUs (CPU) are shown with their FLOPs and no GPU-hours.")
        if rule in GENERATE_RULES and r["flops"] > 0 and max(r["gpus"]) > 1:
            notes.append(f"{rule} runs one process: on a multi-GPU allocation the other GPUs wait "
                         f"(counted in GPU-hours).")
    if notes:
        out += [f"- {n}" for n in notes] + [""]
    d = p.disk
    it = d["items"]
    c = d["concurrent"]
    out += ["## Peak disk", "",
            "| what | count | largest | total |", "| --- | ---: | ---: | ---: |",
            f"| already in `results/` ({', '.join(CHECKPOINT_FOLDERS)}; measured) | | | {_bytes(d['existing'])} |",
            f"| base models (`results/models/`: pretrained in their checkpoint dtype, "
            f"{p.plan['hub_bytes_per_parameter']:g} B/parameter; others {p.plan['checkpoint_bytes_per_parameter']:g}) | "
            f"{it['base'][0]} | {_bytes(it['base'][1])} | {_bytes(it['base'][2])} |",
            f"| hub downloads (Hugging Face cache, {p.plan['hub_bytes_per_parameter']:g} B/parameter) | "
            f"{it['hub'][0]} | {_bytes(it['hub'][1])} | {_bytes(it['hub'][2])} |",
            f"| proxy epoch checkpoints (`results/proxies/`) | {it['proxy_epochs'][0]:,} | "
            f"{_bytes(it['proxy_epochs'][1])} | {_bytes(it['proxy_epochs'][2])} |",
            f"| target checkpoints (`results/targets/`) | {it['targets'][0]:,} | {_bytes(it['targets'][1])} | "
            f"{_bytes(it['targets'][2])} |",
            f"| Trainer resume state (`results/.state/`) of {c} training job(s) at once "
            f"({p.plan['resume_bytes_per_parameter']:g} B/parameter) | {it['resume'][0]} | {_bytes(it['resume'][1])} | "
            f"{_bytes(it['resume'][2])} |",
            f"| **peak, all outputs kept (`keep: {{proxies: true, targets: true}}`)** | | | **{_bytes(d['kept'])}** |",
            f"| **peak, checkpoints temporary (the default: removed once consumed)** | | | **{_bytes(d['temporary'])}** |",
            ""]
    out += ["## Judge calls", ""]
    price = p.plan["judge_price"]
    cost = (f" USD {j['total_usd']:,.0f} at {price['input']:g} / {price['output']:g} USD per million input / output "
            "tokens (plan.judge_price)") if "total_usd" in j else ""
    if j["enabled"]:
        out.append(f"{j['calls']:,} calls: {j['jobs']:,} judge jobs (one per judged model, every judged set) x the "
                   f"set's prompts x 2 orders (retries not counted);{cost}.")
        rows = [(name, f"{e['jobs']:,}", f"{e['calls']:,}") for name, e in j["per_set"].items()]
    else:
        out.append(f"No judge configured: 0 calls. With one: {j['would_call']:,} calls "
                   f"({j['models_per_dataset']:,} judged models per dataset x the set's prompts x 2 orders);{cost}.")
        rows = [(name, f"{j['models_per_dataset'] * len(p.sizes.train):,}", f"{n:,}")
                for name, n in j["would_per_set"].items()]
    tokens = j.get("tokens", {})

    def priced(name):
        t = tokens.get(name)
        return f" | {t['input']:,.0f} | {t['output']:,.0f} | {j['usd'][name]:,.0f}" if t else " | - | - | -"

    out += ["", "| evaluation set | judged models | calls | input tokens per call | output tokens per call | USD |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *[f"| {name} | {jobs} | {calls}{priced(name)} |" for name, jobs, calls in rows]]
    out += ["", *[f"- {name}: {t['source']}; {p.plan['judge_chars_per_token']:g} characters per token "
                  "(plan.judge_chars_per_token); output tokens judge.max_tokens (an upper bound)"
                  for name, t in tokens.items()]]
    out += ["", "## Assumptions", ""]
    tp = p.throughput
    rate = (f"{p.plan['gpu_flops']:.3g} FLOP/s per GPU in bf16, {p.plan['gpu_flops_fp32']:.3g} in float32 "
            f"(plan.gpu_flops, plan.gpu_flops_fp32): sustained FLOP/s on what the GPU computes (padding and "
            f"gradient checkpointing's recomputation are counted in the FLOPs, communication is not)")
    if p.measured_n:
        measured = {k: v for k, v in tp.items() if k != "decode_step_s" and v}
        rate += (f"; measured from {p.measured_n} ledger(s) of jobs that ran (median model FLOP/s per process, "
                 "padding and recomputation included): " + ", ".join(f"{k} {v:.3g}" for k, v in measured.items()))
    decode = (f"the longer of {p.plan['decode_step_s']:g} s (plan.decode_step_s: eager `generate`'s per-step "
              f"overhead) and one read of the weights at {p.plan['gpu_memory_bandwidth']:.3g} B/s "
              "(plan.gpu_memory_bandwidth)")
    if tp.get("decode_step_s"):
        decode = ("measured by the evaluate ledgers for " + ", ".join(
            f"{m} ({v * 1000:.3g} ms)" for m, v in tp["decode_step_s"].items()) + f"; for other models {decode}")
    out += [
        f"- FLOPs: 6 N T per training job (8 N T with gradient checkpointing), 2 N T per forward pass; {rate}.",
        "- Training and extraction scale ideally over the GPUs of a job (one process per GPU); evaluate runs "
        "one process on one GPU (bf16 weights with evaluation.bf16, else float32). GPU-hours = "
        "job wall time x GPUs requested.",
        "- T: training = epochs x rows x tokens per row x the padding factor below; a subset trains on its "
        "realized rows once `select` ran, else on 1/k of the rows (a lower bound: every cluster gives a row). "
        "Extraction = rows x tokens per row per epoch (length-sorted batches; response-only passes counted as "
        "whole rows).",
        f"- Generation: the prompts' forward pass, then batches x max_new_tokens decoding steps (never stopping "
        f"early at EOS: an upper bound), each taking {decode}.",
        f"- Loading: a job reads its model folder(s) at {p.plan['load_bandwidth']:.3g} B/s (plan.load_bandwidth) "
        "before it computes: base models in their checkpoint dtype, saved checkpoints in float32 (extract_losses "
        "reads every epoch's).",
        *[f"- {n}" for n in p.sizes.notes],
        f"- Disk: a saved model is {p.plan['checkpoint_bytes_per_parameter']:g} B/parameter (float32: bf16 is "
        f"autocast, the weights stay float32); a running training job's resume state is "
        f"{p.plan['resume_bytes_per_parameter']:g} B/parameter (the Trainer's checkpoint: float32 weights and two "
        "Adam moments, 12 B, two of them while the next replaces the last); hub downloads "
        f"{p.plan['hub_bytes_per_parameter']:g} B/parameter. Losses, predictions, tables and logs are not counted.",
        f"- Peak with outputs kept = base models + hub downloads + every checkpoint + the resume state of the "
        f"{c} largest training job(s) running at once (--jobs {c}). Temporary = base models + hub downloads + the "
        f"{c} largest (resume state + the job's checkpoints): a target checkpoint is read by its own evaluate "
        "job alone, which run before the next fine-tune (priority), and proxy epochs by their "
        "extraction job.",
        "- Jobs that do not train or run a model (selection, scores, tables, figures, downloads, model "
        "preparation) are counted as jobs with no GPU-hours.",
    ]
    return "\n".join(out) + "\n"

