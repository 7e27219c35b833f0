"""Question 4's section of the report: method, figures, claims 4a-4e, scenario x arm table, run times.

Torch-free on purpose (the report job imports it): the recommended arms arrive normalised through the
report rule's params (dlatoms.finetune.config.recommended runs in the workflow, not here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from markupsafe import Markup

from dlatoms.core.report import (
    Block,
    Heading,
    Paragraph,
    ReportInputs,
    Section,
    Table,
    bold,
    claims_block,
    code,
    fmt_interval,
    fmt_number,
    markup,
    seed_list,
)
from dlatoms.finetune.claims import ADVICE
from dlatoms.finetune.measures import scenario_name

# The questions whose sections this module builds.
QUESTIONS = ("finetune",)

TITLE = "Question 4 — A pretrained ConvNet: fixed feature extractor or fine-tuning?"

METHOD = Markup(  # static prose with inline markup, written here (trusted)
    "A timm ConvNet is pretrained on a <em>source</em> task (procedurally drawn shapes), then reused on "
    "four targets: a <em>similar</em> one (new shape classes from the same generator) or a "
    "<em>dissimilar</em> one (handwritten digits), each with a <em>small</em> or a <em>large</em> training "
    "set, and fixed test sets. Every strategy below is one job per scenario; the seeds of a scenario fix "
    "its training subset, so strategies are compared paired per seed. Linear probes are logistic "
    "regressions (scikit-learn) on standardized pooled features; trained strategies use Adam with a new "
    "head at <code>lr</code> and the pretrained layers at <code>lr × backbone_lr_factor</code>."
)


def _strategy_params(strategy: Mapping) -> str:
    return ", ".join(f"{k}={v}" for k, v in strategy.items() if k != "name")


def _method(section: Mapping, source: pd.DataFrame | None, recommended: Mapping[str, Sequence[str]]) -> list:
    model = section.get("model", {})
    shapes = section.get("shapes", {})
    src = section.get("source", {})
    weights = model.get("weights", "source")
    if weights == "source":
        source_text = (
            f"pretrained here on {len(shapes.get('source_classes', []))} shape classes × "
            f"{src.get('train_per_class')} images, {src.get('epochs')} epoch(s)"
        )
        if source is not None and not source.empty:
            test = source[source["split"] == "test"]
            final = test[test["epoch"] == test["epoch"].max()]
            source_text += f" (source test accuracy {fmt_number(final['accuracy'].mean())})"
    elif weights == "file":
        source_text = markup("loaded from the local file <code>{}</code>", model.get("file"))
    else:
        source_text = "timm's own pretrained weights"
    facts = {
        "model": model.get("name"),
        "pretrained weights": source_text,
        "image size": f"{section.get('image_size')} × {section.get('image_size')} RGB",
        "test images per class": section.get("test_per_class"),
        "seeds (discovery block)": seed_list(section.get("seeds", [])),
        "replication_seeds (held-out block)": seed_list(section.get("replication_seeds", [])),
        "training pool per class": section.get("pool_per_class"),
        "learning-rate schedule": section.get("lr_schedule"),
        "device": section.get("device"),
    }
    facts_rows = [[k, v if isinstance(v, Markup) else str(v)] for k, v in facts.items()]
    targets = [[str(t.get("similarity")), str(t.get("dataset"))] for t in section.get("targets", [])]
    sizes = [
        [str(s.get(k)) for k in ("size", "train_per_class", "epochs", "batch_size", "eval_every")]
        for s in section.get("sizes", [])
    ]
    arms = [
        [code(arm["name"]), str(arm["strategy"]["name"]), _strategy_params(arm["strategy"])]
        for arm in section.get("arms", [])
    ]
    rows = []
    for scenario, names in recommended.items():
        size, similarity = scenario.split("_", 1)
        rows.append(
            [
                scenario,
                ADVICE.get((similarity, size), ""),
                Markup(", ").join(code(n) for n in names),
            ]
        )
    return [
        Heading("Method"),
        Paragraph(METHOD),
        Heading(Markup("Set-up (config <code>finetune</code>)"), 4),
        Table(["setting", "value"], facts_rows),
        Heading("Targets and sizes", 4),
        Table(["similarity", "dataset"], targets),
        Table(["size", "train images per class", "epochs", "batch size", "eval every"], sizes),
        Heading("Strategies (arms)", 4),
        Table(["arm", "strategy", "parameters"], arms),
        Heading("Recommended per scenario (claims 4a–4d)", 4),
        Table(["scenario", "CS231n advice", "recommended arm(s)"], rows),
        Paragraph(
            Markup(
                "Where several arms are recommended, the better of them is the one compared. Every other "
                "arm that ran is a rival, the best of them chosen again in every bootstrap resample; an arm "
                "that beats the recommendation is named the winner in the claim's numbers. The recommended "
                "arm is (close to) the best when it is worse than the best rival by less than "
                "<code>analysis.accuracy_margin</code>."
            )
        ),
    ]


def scenario_table(
    summary: pd.DataFrame,
    arm_order: Sequence[str],
    recommended: Mapping[str, Sequence[str]],
    confidence: str,
) -> list[Block]:
    """Arms × scenarios: mean final test accuracy [interval]; the best mean of each scenario in bold,
    recommended arms marked ★."""
    if summary.empty:
        return [Paragraph("No fine-tuning results.")]
    scenarios = list(dict.fromkeys(zip(summary["similarity"], summary["size"], strict=True)))
    order = {arm: i for i, arm in enumerate(arm_order)}
    arms = sorted(summary["arm"].unique(), key=lambda a: order.get(a, len(order)))
    cells = summary.set_index(["similarity", "size", "arm"])
    best = summary.loc[summary.groupby(["similarity", "size"])["mean"].idxmax()]
    best_keys = set(zip(best["similarity"], best["size"], best["arm"], strict=True))
    rows = []
    for arm in arms:
        row = [code(arm)]
        for similarity, size in scenarios:
            key = (similarity, size, arm)
            if key not in cells.index:
                row.append("–")
                continue
            value = cells.loc[key]
            text = fmt_interval(value["mean"], value["ci_low"], value["ci_high"])
            if key in best_keys:
                text = bold(text)
            if arm in recommended.get(scenario_name(similarity, size), []):
                text = markup("★ {}", text)
            row.append(text)
        rows.append(row)
    headers = ["arm", *[f"{size}, {similarity}" for similarity, size in scenarios]]
    return [
        Table(headers, rows, numeric=range(1, len(headers))),
        Paragraph(
            f"Mean final test accuracy [{confidence} interval] over seeds; bold: the best mean of the "
            "scenario; ★: recommended."
        ),
    ]


def finetune_times(benchmarks: pd.DataFrame) -> list[Block]:
    rows = []
    for rule, label in (
        ("pretrain_source", "pretraining on the source shapes"),
        ("train_finetune_arm", "arm jobs (scenario × arm)"),
        ("probe_stages", "per-stage probes"),
    ):
        part = benchmarks[benchmarks["rule"] == rule]
        if part.empty:
            continue
        rows.append(
            [
                label,
                str(len(part)),
                fmt_number(part["seconds"].sum(), 3),
                fmt_number(part["seconds"].max(), 3),
            ]
        )
    if not rows:
        return [Paragraph("No question 4 benchmarks found.")]
    blocks: list[Block] = [
        Heading("Run time"),
        Table(["jobs", "count", "seconds (sum)", "longest job, s"], rows, numeric=(1, 2, 3)),
        Paragraph("Seconds of job wall time per arm job, all seeds of the scenario:"),
    ]
    jobs = benchmarks[benchmarks["rule"] == "train_finetune_arm"]
    if not jobs.empty:
        parts = jobs["job"].str.split("/", expand=True)
        wide = (
            jobs.assign(scenario=parts[1] + ", " + parts[0], arm=parts[2])
            .pivot_table(index="arm", columns="scenario", values="seconds", sort=False)
            .reset_index()
        )
        blocks.append(
            Table(
                ["arm", *wide.columns[1:]],
                [[code(r[0]), *[fmt_number(v, 2) for v in r[1:]]] for r in wide.values],
                numeric=range(1, len(wide.columns)),
            )
        )
    return blocks


def finetune_section(inputs: ReportInputs) -> Section:
    """The whole question 4 section."""
    section = inputs.settings["finetune"]
    recommended = inputs.settings["finetune_recommended"]
    claims = inputs.tables["claims"]
    arm_order = [arm["name"] for arm in section.get("arms", [])]
    blocks: list[Block] = [
        *_method(section, inputs.tables.get("finetune_source"), recommended),
        Heading("Figures"),
        *[figure for figure in inputs.figures.values() if figure.question == "finetune"],
        Heading("Claims"),
        claims_block(claims[claims["question"] == "finetune"], inputs.confidence, full=True),
        Heading(f"Scenario × arm: mean [{inputs.confidence} interval] over seeds"),
        *scenario_table(inputs.tables["finetune_summary"], arm_order, recommended, inputs.confidence),
        *finetune_times(inputs.benchmarks),
    ]
    return Section("finetune", TITLE, blocks)


def sections(inputs: ReportInputs) -> list[Section]:
    """Question 4's section, when its settings and summary are there."""
    if "finetune" not in inputs.settings or "finetune_summary" not in inputs.tables:
        return []
    return [finetune_section(inputs)]
