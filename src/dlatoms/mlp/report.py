"""Questions 1-3's sections of the report: data, method, figures, claims, per-arm table, run times."""

from __future__ import annotations

import logging
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
    settings_table,
)
from dlatoms.mlp import figures as mlp_figures
from dlatoms.mlp.measures import diverged_runs

log = logging.getLogger(__name__)

# The questions whose sections this module builds, in report order.
QUESTIONS = ("init", "layers", "regularization")

QUESTION_TITLES = {
    "init": "Question 1 — Does initialization change training?",
    "layers": "Question 2 — Do layers converge at different speeds?",
    "regularization": "Question 3 — What do L1 and L2 penalties do to weights and accuracy?",
}
# Wall time of each whole experiment in the reference notebook (TensorFlow 1, 2018).
REFERENCE_SECONDS = {"init": 34.1, "layers": 3.9, "regularization": 17.8}

METHODS = {  # static prose with inline markup, written here (trusted)
    "init": Markup(
        "Each arm initializes weights <em>and</em> biases with one initializer (as the reference does) and "
        "trains the MLP with Adam on the mean squared error to one-hot labels. Every seed has its own data "
        "set, initialization and batch order; arms share seeds, so comparisons are paired per seed. Beyond "
        "the reference we record, at every evaluation, how many hidden units are distinct (rows of a layer "
        "equal within <code>distinct_tolerance</code>) and the share of sigmoid outputs within "
        "<code>saturation_margin</code> of 0 or 1."
    ),
    "layers": Markup(
        "One Xavier network with three hidden layers is trained per seed; every <code>trace_every</code> "
        "steps the last <code>traced_weights</code> entries of each flattened weight matrix are recorded. "
        "The reference's convergence measure is the norm of the difference of the traced weights between "
        "adjacent snapshots. We divide it by the norm of the weights (so layers of different scale compare), "
        "smooth it over <code>smoothing_snapshots</code> intervals, and call a layer converged from the "
        "first step after which it stays below <code>convergence_fraction</code> times its mean over the "
        "first <code>early_snapshots</code> intervals; the interval of that step over seeds gives the order."
        " Claim 2c asks the same of representations: every <code>cka_every</code> steps, each hidden "
        "layer's linear CKA between its activations on the test rows and its activations at the last step; "
        "a layer has converged from the first step after which that CKA stays at or above "
        "<code>cka_level</code>."
    ),
    "regularization": Markup(
        "The penalty strength × Σ over the weight matrices of mean|W| (L1) or mean W² (L2) is added to "
        "the loss. Magnitude is mean|W| averaged over the matrices at the last step; sparsity is the share "
        "of the traced first-layer weights with |w| below <code>sparsity_threshold</code> (Adam keeps "
        "L1-driven weights hovering within a few learning rates of zero, so exact zeros are rare)."
    ),
}

SAMPLING = {  # how a training step draws its rows (config <question>.training.sampling)
    "without_replacement": "Each Adam step trains on {batch} distinct training rows, the first {batch} of a "
    "fresh random permutation (as the reference does).",
    "with_replacement": "Each Adam step trains on {batch} training rows drawn independently with replacement "
    "(the reference draws distinct rows; config training.sampling).",
}
# The analysis settings each question's claims use, and why each has its value (config comments say the same).
QUESTION_THRESHOLDS = {
    "init": ["chance_accuracy", "trained_margin", "accuracy_margin", "collapsed_fraction", "saturation_gap"],
    "layers": [
        "convergence_fraction",
        "early_snapshots",
        "smoothing_snapshots",
        "order_margin",
        "toward_margin",
        "monotone_share",
        "cka_level",
    ],
    "regularization": [
        "sparsity_threshold",
        "sparse_fraction",
        "shrinkage_margin",
        "accuracy_margin",
        "check_tolerance",
    ],
}
THRESHOLD_REASONS = {
    "chance_accuracy": "two balanced classes (a fact, not varied)",
    "trained_margin": "an arm trains when it beats chance by 10 of 100 test points",
    "accuracy_margin": "2 of 100 test points: a smaller difference does not count",
    "collapsed_fraction": "fewer than 1 in 10 units distinct: the layer acts like a few copied units",
    "saturation_gap": "constant 1 saturates over half the hidden outputs more than the small constant",
    "convergence_fraction": "converged once the change stays below half its early value",
    "early_snapshots": "the early change is the mean over the first snapshots",
    "smoothing_snapshots": "minibatch noise otherwise decides 'stays below'",
    "order_margin": "one swapped pair of four layers scores 0.8; a mean below 0.2 is no order",
    "toward_margin": "1 step in 20 more often toward the final weights",
    "monotone_share": "'almost monotonically': more than 9 of 10 steps toward the final weights",
    "cka_level": "within a tenth of the final representation (the upper hidden layers start near 0.1)",
    "sparsity_threshold": "Adam keeps L1-driven weights within a few learning rates of 0",
    "sparse_fraction": "sparse when most weights are near zero",
    "shrinkage_margin": "a tenth of the weight scale: a 1e-6 penalty's 5e-7 does not count",
    "check_tolerance": "a difference that is 0 by construction may differ by float rounding only",
}

SUMMARY_MEASURES = {
    "init": [
        ("final_accuracy", "final test accuracy"),
        ("curve_accuracy", "learning-curve accuracy"),
        ("max_distinct_units", "most distinct hidden units"),
        ("final_saturated_fraction", "saturated hidden outputs (last step)"),
    ],
    "layers": [
        ("convergence_step", "convergence step"),
        ("monotonicity", "monotonicity"),
        ("early_change", "early relative change"),
        ("cka_step", "step CKA reached cka_level"),
    ],
    "regularization": [
        ("mean_abs_weight", "mean |w|"),
        ("near_zero_fraction", "share |w| < threshold"),
        ("final_accuracy", "final test accuracy"),
    ],
}


def summary_table(summaries: pd.DataFrame, question: str, arm_order: Sequence[str] = ()) -> Block:
    """Per arm (and layer): mean [interval] over seeds of the question's measures, arms in config order."""
    part = summaries[summaries["question"] == question]
    rank = {arm: i for i, arm in enumerate(arm_order)}
    part = part.sort_values(
        ["arm", "layer"], key=lambda c: c.map(rank).fillna(len(rank)) if c.name == "arm" else c
    )
    if part.empty:
        return Paragraph("No per-arm measures.")
    measures = [(m, label) for m, label in SUMMARY_MEASURES[question] if m in set(part["measure"])]
    by_layer = (part["layer"] >= 0).any()
    keys = ["arm", "layer"] if by_layer else ["arm"]
    rows = []
    for key, group in part.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in key]
        values = group.set_index("measure")
        for measure, _ in measures:
            if measure in values.index:
                v = values.loc[measure]
                cells.append(fmt_interval(v["mean"], v["ci_low"], v["ci_high"]))
            else:
                cells.append("–")
        rows.append(cells)
    headers = [*keys, *[label for _, label in measures]]
    return Table(headers, rows, numeric=range(len(keys), len(headers)))


def _arms_table(section: Mapping) -> Table:
    rows = []
    for arm in section.get("arms", []):
        init = arm.get("init", section.get("init", {}))
        penalty = arm.get("penalty", section.get("penalty", {}))
        rows.append(
            [
                code(arm["name"]),
                ", ".join(f"{k}={v}" for k, v in init.items()),
                ", ".join(f"{k}={v}" for k, v in penalty.items()),
            ]
        )
    return Table(["arm", "initializer", "penalty"], rows)


def question_method(question: str, section: Mapping, analysis: Mapping) -> list[Block]:
    network = section.get("network", {})
    training = section.get("training", {})
    facts = {
        "seeds (discovery block)": seed_list(section.get("seeds", [])),
        "replication_seeds (held-out block)": seed_list(section.get("replication_seeds", [])),
        "hidden_sizes": network.get("hidden_sizes"),
        "activation": network.get("activation", "sigmoid"),
        **{k: v for k, v in training.items()},
    }
    thresholds = {k: analysis[k] for k in QUESTION_THRESHOLDS[question] if k in analysis}
    sampling = training.get("sampling", "without_replacement")
    return [
        Heading("Method"),
        Paragraph(METHODS[question]),
        Paragraph(SAMPLING[sampling].format(batch=training.get("batch_size", 64))),
        Heading(markup("Training (config <code>{}</code>)", question), 4),
        settings_table(facts),
        Heading("Arms", 4),
        _arms_table(section),
        Heading(Markup("Analysis thresholds and margins (config <code>analysis</code>)"), 4),
        Paragraph(
            "A margin is the smallest effect that counts; some margins were set or changed after results "
            "had been seen (listed under “Rules changed after results were seen”). "
            "Each claim is decided again with each of its thresholds at "
            f"{' / '.join(f'{f:g}' for f in analysis.get('sensitivity_factors', [0.5, 1, 2]))} × its value "
            "(robust share)."
        ),
        Table(
            ["setting", "value", "why this value"],
            [[code(k), str(v), THRESHOLD_REASONS.get(k, "")] for k, v in thresholds.items()],
        ),
    ]


def _claim(claims: pd.DataFrame, claim_id: str) -> pd.Series | None:
    rows = claims[claims["claim_id"] == claim_id]
    return rows.iloc[0] if len(rows) else None


# What each verdict of the claims behind "why constant 0 trains and constant 1 does not" lets us say.
CAUSE_SENTENCES = {
    "1d": {
        "supported": "Constant 0 trains (1d).",
        "contradicted": "Constant 0 does not train (1d).",
        "inconclusive": "Whether constant 0 trains is undecided (1d inconclusive).",
    },
    "1z": {
        "supported": "Its hidden units stay exact copies of one unit throughout (tolerance 0; the check "
        "1z, which holds by construction on one thread).",
        "contradicted": "Its hidden units do not stay exact copies (the check 1z fails: see its numbers).",
        "inconclusive": "Whether its hidden units stay exact copies is undecided (the check 1z "
        "inconclusive).",
    },
    "1f": {
        "supported": "Constant 0 plus 1e-6 noise ends with distinct hidden units (1f).",
        "contradicted": "Constant 0 plus 1e-6 noise ends with its hidden units still collapsed (1f "
        "contradicted).",
        "inconclusive": "Whether 1e-6 noise makes the hidden units distinct is undecided (1f inconclusive).",
    },
    "1e": {
        "supported": "Constant 1 does not train in the reference's steps (1e).",
        "contradicted": "Constant 1 trains in the reference's steps (1e).",
        "inconclusive": "Whether constant 1 trains in the reference's steps is undecided (1e inconclusive).",
    },
    "1e+": {
        "supported": "Nor with four times the steps (1e+).",
        "contradicted": "With four times the steps it does train (1e+).",
        "inconclusive": "With four times the steps it is undecided (1e+ inconclusive).",
    },
    "1g": {
        "supported": "A constant just as symmetric but small enough not to saturate (1/fan_in) trains, and "
        "constant 1 saturates more of its hidden outputs than it by the margin (1g): in this intervention "
        "symmetry alone does not stop training, saturation goes with failing.",
        "contradicted": "The intervention does not separate saturation from symmetry: the small symmetric "
        "constant (1/fan_in) does not train, or saturates about as much as constant 1 (1g contradicted).",
        "inconclusive": "Whether saturation rather than symmetry stops constant 1 is undecided (1g "
        "inconclusive).",
    },
}


def cause_heading(claims: pd.DataFrame) -> str:
    """The heading says "why constant 0 trains and constant 1 does not" only where 1d and 1e say so."""
    verdicts = {
        c: (None if _claim(claims, c) is None else _claim(claims, c)["verdict"]) for c in ("1d", "1e")
    }
    if verdicts == {"1d": "supported", "1e": "supported"}:
        return "Why constant 0 trains and constant 1 does not"
    return "Constant 0 and constant 1: what the verdicts say"


def init_cause(claims: pd.DataFrame) -> list[Block]:
    """Why constant 0 trains and constant 1 does not: one sentence per claim, chosen by its verdict."""
    sentences = []
    for claim_id, by_verdict in CAUSE_SENTENCES.items():
        claim = _claim(claims, claim_id)
        if claim is None or claim["verdict"] == "not_measured":
            continue
        verdict = str(claim["verdict"])
        sentences.append(by_verdict.get(verdict, f"Claim {claim_id} is {verdict.replace('_', ' ')}."))
    if not sentences:
        return []
    text = markup("<b>{} (from the verdicts of this run).</b> {}", cause_heading(claims), " ".join(sentences))
    return [Paragraph(text, note=True)]


def question_times(benchmarks: pd.DataFrame, question: str, section: Mapping) -> list[Block]:
    train = benchmarks[(benchmarks["rule"] == "train_arm") & benchmarks["job"].str.startswith(f"{question}/")]
    if train.empty:
        return [Paragraph("No training benchmarks found.")]
    rows = [
        [job.split("/", 1)[1], fmt_number(s, 2)]
        for job, s in zip(train["job"], train["seconds"], strict=True)
    ]
    total = train["seconds"].sum()
    seeds = len(section.get("seeds", [])) + len(section.get("replication_seeds", []))
    rows.append([bold("all arms"), bold(fmt_number(total, 1))])
    return [
        Heading("Run time"),
        Table(["training job (arm)", "seconds"], rows, numeric=(1,)),
        Paragraph(
            f"{seeds * len(train)} training runs ({len(train)} arms × {seeds} seeds) in "
            f"{total:.1f} s of job wall time; the reference took {REFERENCE_SECONDS[question]} s for its "
            "whole experiment (fewer runs, TensorFlow 1)."
        ),
    ]


def diverged_section(diverged: pd.DataFrame) -> Section:
    """Which training runs diverged (loss NaN/inf), at which step, and how the analysis counts them."""
    title = "Diverged runs"
    if diverged.empty:
        return Section("diverged", title, [Paragraph("None: every training run kept a finite loss.")])
    rows = [[r.question, code(r.arm), str(r.seed), str(r.diverged_step)] for r in diverged.itertuples()]
    note = (
        f"{len(diverged)} training run(s) diverged (the loss became NaN or infinite). Their recorded values "
        "are NaN from that step on; accuracy measures count them at chance accuracy from the step they "
        "diverged, other measures leave them out (fewer seeds), and each claim's detail names the diverged "
        "runs of the arms it compares."
    )
    return Section(
        "diverged",
        title,
        [Paragraph(note, note=True), Table(["question", "arm", "seed", "diverged at step"], rows, (2, 3))],
    )


def data_section(settings: Mapping) -> Section:
    """The mixture data, the diagnostics recorded, and how intervals are computed."""
    data = settings.get("data", {})
    analysis = settings.get("analysis", {})
    separation = data.get("separation", "harmonic")
    separation_text = (
        "1/(i+1) in dimension i — the reference code's choice (its prose says 1 in every dimension)"
        if separation == "harmonic"
        else f"{separation} in every dimension (the reference code uses 1/(i+1))"
    )
    return Section(
        "data",
        "Data (questions 1–3)",
        [
            Paragraph(
                markup(
                    "Two-class mixture of Gaussians with shared covariance CᵀC, C = s·U(0,1)<sup>d×d</sup>; "
                    "a fresh data set per seed. Class-1 mean separation: {}.",
                    separation_text,
                )
            ),
            settings_table(data),
            Paragraph(Markup("Diagnostics recorded during training (config <code>diagnostics</code>):")),
            settings_table(settings.get("diagnostics", {})),
            Paragraph(interval_method(analysis)),
        ],
    )


def interval_method(analysis: Mapping) -> str:
    """How the intervals of every claim and band are computed, as configured."""
    level = f"{100 * float(analysis.get('confidence', 0.95)):g}%"
    if analysis.get("interval", "t") == "t":
        return (
            f"Intervals ({level}): the Student t interval of the mean over seeds (of per-seed paired "
            "differences when arms are compared; arms share seeds). A statistic that is not a mean — X minus "
            "the best rival, the rival chosen again in each of "
            f"{analysis.get('bootstrap_resamples', '')} paired bootstrap resamples — gets the expanded "
            "percentile bootstrap interval, widened to contain the simultaneous t bound over the rivals. "
            "Both cover at least 93% in simulation at 5, 10 and 20 seeds (tests/core/test_coverage.py)."
        )
    return (
        f"Intervals ({level}): percentile bootstrap over seeds, {analysis.get('bootstrap_resamples', '')} "
        f"resamples, resampling seed {analysis.get('bootstrap_seed', '')} (config analysis.interval: "
        "percentile; it covers less than its level at few seeds)."
    )


def question_section(question: str, inputs: ReportInputs) -> Section:
    """One question's section: method, figures, claims, per-arm table, run times."""
    section = inputs.settings["questions"][question]
    claims = inputs.tables["claims"]
    blocks: list[Block] = question_method(question, section, inputs.settings.get("analysis", {}))
    blocks.append(Heading("Figures"))
    blocks += [
        figure
        for name, figure in inputs.figures.items()
        if name in mlp_figures.FIGURES and figure.question == question
    ]
    if question == "init":
        blocks += init_cause(claims)
    blocks.append(Heading("Claims"))
    blocks.append(claims_block(claims[claims["question"] == question], inputs.confidence, full=True))
    blocks.append(Heading(f"Per arm: mean [{inputs.confidence} interval] over seeds"))
    arm_order = [arm["name"] for arm in section.get("arms", [])]
    blocks.append(summary_table(inputs.tables["arm_summaries"], question, arm_order))
    blocks += question_times(inputs.benchmarks, question, section)
    return Section(question, QUESTION_TITLES[question], blocks)


def sections(inputs: ReportInputs) -> list[Section]:
    """Questions 1-3's sections of the report, in order: diverged runs, data, then each question."""
    metrics = {q: inputs.tables[f"{q}_metrics"] for q in QUESTIONS if f"{q}_metrics" in inputs.tables}
    out = []
    if metrics:
        diverged = diverged_runs(metrics)
        if len(diverged):
            log.warning("%d diverged run(s) listed in the report", len(diverged))
        out.append(diverged_section(diverged))
    out.append(data_section(inputs.settings))
    questions = inputs.settings.get("questions", {})
    out += [question_section(q, inputs) for q in QUESTIONS if q in questions]
    return out
