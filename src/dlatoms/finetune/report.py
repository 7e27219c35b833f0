"""Question 4's section of the HTML report: method, figures, claims 4a-4e, scenario x strategy table, times.

Uses the helpers of dlatoms.report (tables, numbers, verdicts, embedded figures) so that the section reads
like those of questions 1-3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from dlatoms.core.report import claims_table, embedded_figure, esc, fmt_number, html_table
from dlatoms.finetune.claims import ADVICE
from dlatoms.finetune.config import recommended as finetune_recommended
from dlatoms.finetune.measures import scenario_name

TITLE = "Question 4 — A pretrained ConvNet: fixed feature extractor or fine-tuning?"

FIGURE_TITLES = {
    "finetune_accuracy": "Final test accuracy per scenario and arm",
    "finetune_curves": "Learning curves per scenario",
    "finetune_stage_probes": "Linear probes on each stage's features",
}
FIGURE_CAPTIONS = {
    "finetune_accuracy": "Mean final test accuracy over seeds and its bootstrap interval, per scenario "
    "(small/large × similar/dissimilar target) and strategy; the recommended strategy of each scenario is "
    "marked.",
    "finetune_curves": "Test accuracy against epoch for the strategies that train a network; mean and band "
    "over seeds. Probes (dashed) have one point, after fitting.",
    "finetune_stage_probes": "A logistic regression on the pooled features of each stage of the pretrained "
    "network: which layer's features transfer to each target (global and 2 × 2 pooling).",
}

METHOD = (
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


def _method(section: Mapping, source: pd.DataFrame | None) -> str:
    model = section.get("model", {})
    shapes = section.get("shapes", {})
    src = section.get("source", {})
    seeds = section.get("seeds", [])
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
        source_text = f"loaded from the local file <code>{esc(model.get('file'))}</code>"
    else:
        source_text = "timm's own pretrained weights"
    facts = {
        "model": model.get("name"),
        "pretrained weights": source_text,
        "image size": f"{section.get('image_size')} × {section.get('image_size')} RGB",
        "test images per class": section.get("test_per_class"),
        "seeds": f"{len(seeds)} ({', '.join(str(s) for s in seeds)})",
        "learning-rate schedule": section.get("lr_schedule"),
        "device": section.get("device"),
    }
    facts_rows = [[esc(k), v if k == "pretrained weights" else esc(v)] for k, v in facts.items()]
    targets = [[esc(t.get("similarity")), esc(t.get("dataset"))] for t in section.get("targets", [])]
    sizes = [
        [esc(s.get(k)) for k in ("size", "train_per_class", "epochs", "batch_size", "eval_every")]
        for s in section.get("sizes", [])
    ]
    controls = set(section.get("controls", []))
    arms = [
        [
            f"<code>{esc(arm['name'])}</code>",
            esc(arm["strategy"]["name"]),
            esc(_strategy_params(arm["strategy"])),
            "control of claim 4e" if arm["name"] in controls else "",
        ]
        for arm in section.get("arms", [])
    ]
    recommended = []
    for scenario, names in finetune_recommended({"finetune": section}).items():
        size, similarity = scenario.split("_", 1)
        recommended.append(
            [
                esc(scenario),
                esc(ADVICE.get((similarity, size), "")),
                ", ".join(f"<code>{esc(n)}</code>" for n in names),
            ]
        )
    return (
        f"<h3>Method</h3><p>{METHOD}</p>"
        f"<h4>Set-up (config <code>finetune</code>)</h4>{html_table(['setting', 'value'], facts_rows)}"
        f"<h4>Targets and sizes</h4>{html_table(['similarity', 'dataset'], targets)}"
        + html_table(["size", "train images per class", "epochs", "batch size", "eval every"], sizes)
        + f"<h4>Strategies (arms)</h4>{html_table(['arm', 'strategy', 'parameters', 'role'], arms)}"
        + "<h4>Recommended per scenario (claims 4a–4d)</h4>"
        + html_table(["scenario", "CS231n advice", "recommended arm(s)"], recommended)
        + "<p>Where several arms are recommended, the better of them is the one compared. The control arms "
        "(<code>finetune.controls</code>) answer claim 4e only and are not counted as rivals in 4a–4d.</p>"
    )


def scenario_table(summary: pd.DataFrame, section: Mapping) -> str:
    """Arms × scenarios: mean final test accuracy [interval]; the best mean of each scenario in bold,
    recommended arms marked ★."""
    if summary.empty:
        return "<p>No fine-tuning results.</p>"
    scenarios = list(dict.fromkeys(zip(summary["similarity"], summary["size"], strict=True)))
    order = {arm["name"]: i for i, arm in enumerate(section.get("arms", []))}
    arms = sorted(summary["arm"].unique(), key=lambda a: order.get(a, len(order)))
    recommended = finetune_recommended({"finetune": section})
    cells = summary.set_index(["similarity", "size", "arm"])
    best = summary.loc[summary.groupby(["similarity", "size"])["mean"].idxmax()]
    best_keys = set(zip(best["similarity"], best["size"], best["arm"], strict=True))
    rows = []
    for arm in arms:
        row = [f"<code>{esc(arm)}</code>"]
        for similarity, size in scenarios:
            key = (similarity, size, arm)
            if key not in cells.index:
                row.append("–")
                continue
            value = cells.loc[key]
            text = (
                f"{fmt_number(value['mean'])} [{fmt_number(value['ci_low'])}, {fmt_number(value['ci_high'])}]"
            )
            if key in best_keys:
                text = f"<b>{text}</b>"
            if arm in recommended.get(scenario_name(similarity, size), []):
                text = f"★ {text}"
            row.append(text)
        rows.append(row)
    headers = ["arm", *[f"{size}, {similarity}" for similarity, size in scenarios]]
    return (
        html_table(headers, rows, numeric=range(1, len(headers)))
        + "<p>Mean final test accuracy [95% interval] over seeds; bold: the best mean of the scenario; "
        "★: recommended.</p>"
    )


def finetune_times(benchmarks: pd.DataFrame) -> str:
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
            [esc(label), str(len(part)), fmt_number(part["seconds"].sum(), 3),
             fmt_number(part["seconds"].max(), 3)]
        )  # fmt: skip
    if not rows:
        return "<p>No question 4 benchmarks found.</p>"
    jobs = benchmarks[benchmarks["rule"] == "train_finetune_arm"]
    per_arm = ""
    if not jobs.empty:
        parts = jobs["job"].str.split("/", expand=True)
        wide = (
            jobs.assign(scenario=parts[1] + ", " + parts[0], arm=parts[2])
            .pivot_table(index="arm", columns="scenario", values="seconds", sort=False)
            .reset_index()
        )
        per_arm = html_table(
            ["arm", *wide.columns[1:]],
            [[f"<code>{esc(r[0])}</code>", *[fmt_number(v, 2) for v in r[1:]]] for r in wide.values],
            numeric=range(1, len(wide.columns)),
        )
    return (
        "<h3>Run time</h3>"
        + html_table(["jobs", "count", "seconds (sum)", "longest job, s"], rows, numeric=(1, 2, 3))
        + "<p>Seconds of job wall time per arm job, all seeds of the scenario:</p>"
        + per_arm
    )


def finetune_section(
    section: Mapping,
    claims: pd.DataFrame,
    summary: pd.DataFrame,
    source: pd.DataFrame | None,
    figures: Mapping[str, str],
    benchmarks: pd.DataFrame,
    dpi: float,
) -> str:
    """The whole question 4 section."""
    parts = [f"<h2 id='finetune'>{esc(TITLE)}</h2>", _method(section, source), "<h3>Figures</h3>"]
    for name, title in FIGURE_TITLES.items():
        if name in figures:
            parts.append(embedded_figure(name, figures[name], dpi, title, FIGURE_CAPTIONS[name]))
    parts.append("<h3>Claims</h3>")
    parts.append(claims_table(claims[claims["question"] == "finetune"], full=True))
    parts.append("<h3>Scenario × arm: mean [95% interval] over seeds</h3>")
    parts.append(scenario_table(summary, section))
    parts.append(finetune_times(benchmarks))
    return "\n".join(parts)


def figure_names() -> Sequence[str]:
    return list(FIGURE_TITLES)
