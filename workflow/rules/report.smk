# The final report: results/report/index.html (self-contained), and captions for `snakemake --report`.


import os

import dlatoms.finetune.config as finetune_cfg


report: "../report/workflow.rst"


FINETUNE_PRETRAINS = config["finetune"]["model"]["weights"] == "source"


# Benchmark files of every training, measuring, claims and figure job, in pipeline order.
REPORT_BENCHMARKS = (
    [
        f"benchmarks/train_arm/{question}/{arm}.tsv"
        for question in MLP_QUESTIONS
        for arm in arm_names(config, question)
    ]
    + [f"benchmarks/measure_{question}.tsv" for question in MLP_QUESTIONS]
    + ["benchmarks/compute_claims.tsv"]
    + [f"benchmarks/plot_figure/{name}.tsv" for name in FIGURE_NAMES]
    + (["benchmarks/pretrain_source.tsv"] if FINETUNE_PRETRAINS else [])
    + [
        f"benchmarks/train_finetune_arm/{similarity}/{size}/{arm}.tsv"
        for similarity, size in finetune_cfg.scenarios(config)
        for arm in finetune_cfg.arm_names(config)
    ]
    + [
        f"benchmarks/probe_stages/{similarity}.tsv"
        for similarity in finetune_cfg.similarities(config)
    ]
)

# Other runs' question 4 tables to show beside this run's (config finetune.compare), those that exist.
REPORT_COMPARE = {
    f"compare_{i}_{kind}": f"{entry['tables']}/{name}"
    for i, entry in enumerate(config["finetune"].get("compare", []))
    for kind, name in (
        ("summary", "finetune_summary.parquet"),
        ("claims", "finetune_claims.parquet"),
    )
    if os.path.exists(f"{entry['tables']}/{name}")
}

# The config values the report's method sections state.
REPORT_SETTINGS = {
    "data": config["data"],
    "diagnostics": config["diagnostics"],
    "questions": {question: config[question] for question in MLP_QUESTIONS},
    "analysis": config["analysis"],
    "figures": config["figures"],
    "finetune": config["finetune"],
    # normalised here, so that the report job need not import dlatoms.finetune.config (torch)
    "finetune_recommended": finetune_cfg.recommended(config),
    "atlas_axes": {
        q: atlas_cfg.figure_axes(config, q) for q in atlas_cfg.atlas_questions(config)
    },
    "atlas_seeds": atlas_cfg.seeds_per_cell(config),
    "atlas_chance": atlas_cfg.chance_settings(config),
    "finetune_comparisons": {
        entry["label"]: {
            "summary": f"compare_{i}_summary",
            "claims": f"compare_{i}_claims",
        }
        for i, entry in enumerate(config["finetune"].get("compare", []))
    },
}

# Question 4's pretraining curve, when the pipeline pretrains its own source model.
REPORT_FINETUNE_SOURCE = (
    {"finetune_source": "results/tables/finetune_source.parquet"}
    if FINETUNE_PRETRAINS
    else {}
)


# The atlas's table, when the config has an atlas.
REPORT_ATLAS = (
    {
        "atlas_claims": "results/tables/atlas_claims.parquet",
        "atlas_base": "results/tables/atlas_base.parquet",
    }
    if ATLAS
    else {}
)


rule render_report:
    input:
        **REPORT_ATLAS,
        **REPORT_FINETUNE_SOURCE,
        **REPORT_COMPARE,
        claims="results/tables/claims.parquet",
        rule_changes="results/tables/rule_changes.parquet",
        summaries="results/tables/arm_summaries.parquet",
        metrics=expand(
            "results/tables/{question}_metrics.parquet", question=MLP_QUESTIONS
        ),
        finetune_summary="results/tables/finetune_summary.parquet",
        finetune_metrics="results/tables/finetune_metrics.parquet",
        finetune_similarity="results/tables/finetune_similarity.parquet",
        figures=figure_targets(),
        benchmarks=REPORT_BENCHMARKS,
    output:
        report(
            "results/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        "logs/render_report.log",
    localrule: True
    params:
        figure_names=FIGURE_NAMES,
        questions=MLP_QUESTIONS,
        settings=REPORT_SETTINGS,
        compare=list(REPORT_COMPARE),
    script:
        "../../scripts/render_report.py"
