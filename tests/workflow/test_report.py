"""The smoke workflow ends with every figure, the claims table and a self-contained report.

One real snakemake run on config/smoke.yaml (module fixture), then: files exist, the report names every
claim and embeds every figure, a copied report opens offline in headless Chromium with nothing failing to
load, and `snakemake --report` builds the standard report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import snakemake

from dlatoms import catalog
from dlatoms.core import claim_notes
from dlatoms.core.report import Page, Section, claims_block, confidence_label, render
from dlatoms.core.verdicts import CLAIM_COLUMNS, KINDS, VERDICTS, claims_frame
from dlatoms.finetune.claims import CLAIMS as FINETUNE_CLAIMS
from dlatoms.finetune.report import scenario_table
from dlatoms.mlp.claims import CLAIMS
from dlatoms.mlp.figures import FIGURES
from dlatoms.mlp.jobs import compute_claims_job
from dlatoms.mlp.report import diverged_section
from dlatoms.report import overview

FINETUNE_FIGURES = [name for name, figure in catalog.FIGURES.items() if figure.question == "finetune"]

# The report and what it is built from (questions 1-3); other questions' jobs stay out of this test.
# (the target first: --configfile would swallow it as a second config file)
SMOKE = ["results/report/index.html", "--configfile", "config/smoke.yaml"]
OWN_FIGURE_RULES = {"plot_figure"}  # one rule draws every figure (dlatoms.catalog)


@pytest.fixture(scope="module")
def workdir(smoke_workdir) -> Path:
    return smoke_workdir


def render_blocks(*sections: Section) -> str:
    """Sections rendered through the report's own template."""
    return render(Page("test", "test", "", list(sections)))


class Resources(HTMLParser):
    """Every src/href of a page, and the figure sources it says it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.figures: dict[str, str] = {}
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.links.append((tag, name, attrs[name]))
        if tag == "img" and "data-figure" in attrs:
            self.figures[attrs["data-figure"]] = attrs.get("data-source", "")


def parse(html: str) -> Resources:
    parser = Resources()
    parser.feed(html)
    return parser


def test_every_figure_claims_table_and_report_exist(workdir):
    for name in FIGURES:
        for ext in ("png", "svg"):
            path = workdir / "results" / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    claims = pd.read_parquet(workdir / "results/tables/claims.parquet")
    # the shared columns, then the literature and the rule provenance beside every claim (collect_claims)
    notes = [*claim_notes.LITERATURE_COLUMNS, *claim_notes.PROVENANCE_COLUMNS]
    assert list(claims.columns) == [*CLAIM_COLUMNS, *notes]
    assert not (claims["literature_agrees"] == claim_notes.NO_ENTRY).any()
    assert (workdir / "results/tables/rule_changes.parquet").is_file()
    # one table holds every claim of questions 1-4, in question order
    assert list(claims["claim_id"]) == [c.claim_id for c in (*CLAIMS, *FINETUNE_CLAIMS)]
    assert set(claims["verdict"]) | set(claims["replication_verdict"]) <= set(VERDICTS)
    assert set(claims["kind"]) <= set(KINDS) and "check" in set(claims["kind"])
    measured = claims[claims["verdict"] != "not_measured"]
    assert measured["robust_share"].between(0, 1).all() and (measured["settings"] >= 1).all()
    assert (claims.loc[claims["replication_verdict"] != "not_measured", "replication_n_seeds"] >= 2).all()
    assert (workdir / "results/report/index.html").is_file()
    assert (workdir / "results/tables/claims.tsv").is_file()


def test_report_names_every_claim_and_embeds_existing_figures(workdir):
    html = (workdir / "results/report/index.html").read_text(encoding="utf-8")
    for claim in (*CLAIMS, *FINETUNE_CLAIMS):
        assert f'id="claim-{claim.claim_id}"' in html, claim.claim_id
    page = parse(html)
    assert set(page.figures) == set(catalog.FIGURES), "the report must embed every figure"
    for name, source in page.figures.items():
        assert (workdir / source).is_file(), f"figure {name} embeds {source}, which does not exist"
    for tag, attribute, value in page.links:
        # self-contained: images are data URIs, links are in-page anchors; nothing to fetch
        assert value.startswith(("data:", "#")), f"<{tag} {attribute}={value[:60]!r}> needs a file or network"
    assert not {"script", "link", "iframe"} & page.tags
    assert not re.search(r"url\((?!['\"]?data:)", html), "CSS must not load anything"
    for section in ("Method", "Run time", "replication", "robust share", "Checks of the pipeline"):
        assert section in html, section
    # the literature under every claim, and every change made after a result was seen
    assert html.count('<p class="literature">') >= 2 * (len(CLAIMS) + len(FINETUNE_CLAIMS))
    assert "Rules changed after results were seen" in html
    changes = pd.read_parquet(workdir / "results/tables/rule_changes.parquet")
    for what in set(changes.loc[changes["after_result"], "what"]):
        assert str(markupsafe.escape(what)) in html, what
    claims = pd.read_parquet(workdir / "results/tables/claims.parquet")
    findings, checks = (int((claims["kind"] == kind).sum()) for kind in ("finding", "check"))
    assert f"{len(claims)} claims</b>: {findings} findings" in html and f"and {checks} check(s)" in html


def test_report_has_a_question_4_section(workdir):
    html = (workdir / "results/report/index.html").read_text(encoding="utf-8")
    section = html[html.index("id='finetune'") : html.index("id='times'")]
    claims = pd.read_parquet(workdir / "results/tables/claims.parquet")
    claims = claims[claims["question"] == "finetune"]
    assert list(claims["claim_id"]) == [claim.claim_id for claim in FINETUNE_CLAIMS]
    for claim_id in claims["claim_id"]:
        assert f'id="claim-{claim_id}"' in section, claim_id  # full claim rows in the section
        assert f'href="#claim-{claim_id}"' in html, claim_id  # and in the overview at the top
    for name in FINETUNE_FIGURES:
        assert f'data-figure="{name}"' in section, name
    summary = pd.read_parquet(workdir / "results/tables/finetune_summary.parquet")
    for row in summary.itertuples():  # every (scenario, strategy) mean is in the scenario x strategy table
        assert f"<code>{row.arm}</code>" in section
        assert f"{row.size}, {row.similarity}" in section
        assert f"{row.mean:.3g} [{row.ci_low:.3g}, {row.ci_high:.3g}]" in section, row
    for text in ("pretraining on the source shapes", "arm jobs", "per-stage probes", "test_resnet"):
        assert text in section, text


def test_scenario_table_marks_the_best_and_the_recommended():
    summary = pd.DataFrame(
        {
            "similarity": ["similar"] * 3,
            "size": ["small"] * 3,
            "arm": ["scratch", "probe_final", "finetune_all"],
            "mean": [0.25, 0.5, 0.75],
            "ci_low": [0.2, 0.4, 0.7],
            "ci_high": [0.3, 0.6, 0.8],
        }
    )
    arm_order = ["probe_final", "finetune_all", "scratch"]
    blocks = scenario_table(summary, arm_order, {"small_similar": ["probe_final"]}, "95%")
    html = render_blocks(Section("finetune", "q4", blocks))
    assert "<b>0.75 [0.7, 0.8]</b>" in html  # the best mean in bold
    assert "★ 0.5 [0.4, 0.6]" in html and html.count("★") == 2  # the recommended cell and the legend
    rows = re.findall(r"<code>(\w+)</code>", html)
    assert rows == ["probe_final", "finetune_all", "scratch"]  # arms in config order


def _claim_row(**values) -> dict:
    row = {
        "claim_id": "9z",
        "question": "init",
        "kind": "finding",
        "statement": "s",
        "statistic": 0.5,
        "ci_low": 0.4,
        "ci_high": 0.6,
        "n_seeds": 3,
        "margin": 0.02,
        "verdict": "supported",
        "replication_statistic": 0.1,
        "replication_ci_low": -0.1,
        "replication_ci_high": 0.3,
        "replication_n_seeds": 3,
        "replication_verdict": "inconclusive",
        "robust_share": 0.95,
        "settings": 3,
        "confidence": 0.9,
        "reference_conclusion": "yes",
        "measure": "m",
        "rule": "r",
        "detail": "d",
        "replication_detail": "rd",
        "top_rival": "",
        "top_rival_statistic": float("nan"),
        "top_rival_ci_low": float("nan"),
        "top_rival_ci_high": float("nan"),
        "beaten": False,
        "n_tests": 6,
    }
    return {**row, **values}


def test_report_text_is_escaped_and_states_the_configured_confidence():
    claims = claims_frame([_claim_row(statement="<script>x</script> & more")])
    confidence = confidence_label({"confidence": 0.9})
    html = render_blocks(Section("claims", "Claims", [claims_block(claims, confidence, full=True)]))
    assert "&lt;script&gt;x&lt;/script&gt; &amp; more" in html and "<script>" not in html
    assert "95%" not in html
    assert '<span id="claim-9z">9z</span>' in html and "0.5 [0.4, 0.6]" in html
    # the replication verdict differs from the discovery verdict: flagged; robust share >= 0.9: marked
    assert "≠ differs" in html and 'class="differs"' in html
    assert "0.95 (3 settings) <b" in html and "robust</b>" in html


def test_overview_counts_findings_and_checks_apart_and_states_the_intervals():
    claims = claims_frame(
        [
            _claim_row(claim_id="1a", verdict="supported", replication_verdict="supported"),
            _claim_row(claim_id="1b", verdict="contradicted", robust_share=0.5),
            _claim_row(claim_id="3z", kind="check", verdict="supported", replication_verdict="supported"),
        ]
    )
    html = render_blocks(Section("claims", "Claims", overview(claims, {"confidence": 0.9, "adjust": "none"})))
    assert "3 claims</b>: 2 findings (1 supported, 1 contradicted) and 1 check(s)" in html
    assert (
        "1 of 2 measured findings reach the same verdict" in html
        and "1b (contradicted → inconclusive)" in html
    )
    assert "1 of 2 findings with a decisive verdict (supported or contradicted) keep it" in html
    assert "6 intervals" in html and "not adjusted for multiple comparisons" in html
    assert "rest on 18 tests" in html  # n_tests summed over the claims (6 each)
    assert (
        html.index('href="#claim-1b"') < html.index("Checks of the pipeline") < html.index('href="#claim-3z"')
    )
    holm = render_blocks(Section("claims", "Claims", overview(claims, {"confidence": 0.9, "adjust": "holm"})))
    assert "Holm" in holm and "not adjusted" not in holm


def planned_rules(workdir: Path, old: str, new: str) -> set[str]:
    """Rules a dry run plans after replacing `old` by `new` in the smoke config (restored afterwards)."""
    config = workdir / "config" / "smoke.yaml"
    original = config.read_text()
    assert old in original
    try:
        config.write_text(original.replace(old, new))
        dry = snakemake(workdir, "-n", *SMOKE, "--quiet", "rules")
        assert dry.returncode == 0, dry.stdout[-2000:]
        return set(re.findall(r"^(\w+)\s+\d+$", dry.stdout, re.MULTILINE)) - {"total"}
    finally:
        config.write_text(original)


def test_a_style_edit_reruns_figures_and_report_only(workdir):
    rules = planned_rules(workdir, "font_scale: 1.0", "font_scale: 1.1")
    assert OWN_FIGURE_RULES | {"render_report"} <= rules
    assert all(rule.startswith("plot_") or rule == "render_report" for rule in rules), rules


def test_a_verdict_threshold_reruns_claims_and_report_only(workdir):
    rules = planned_rules(workdir, "trained_margin: 0.1", "trained_margin: 0.2")
    # and the atlas's decisions, its table and maps: its cells are decided with the same thresholds
    atlas = {"decide_atlas_question", "collect_atlas", "reconcile_atlas_base", "plot_figure"}
    assert rules == {"compute_claims", "collect_claims", "render_report"} | atlas, rules


def test_claims_are_byte_identical_when_recomputed(workdir, tmp_path):
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    tables = workdir / "results" / "tables"
    inputs = {
        f"{q}_measures": str(tables / f"{q}_measures.parquet") for q in ("init", "layers", "regularization")
    }
    for name in ("layers_metrics", "layers_weights", "regularization_metrics", "regularization_weights"):
        inputs[name] = str(tables / f"{name}.parquet")
    for name in ("layers_units", "regularization_units"):  # every raw table the rule reads (2c: layers_units)
        inputs[name] = str(tables / f"{name}.parquet")
    outputs = {"claims": "mlp_claims.parquet", "summaries": "arm_summaries.parquet"}
    blocks = {
        q: {"discovery": config[q]["seeds"], "replication": config[q]["replication_seeds"]}
        for q in ("init", "layers", "regularization")
    }
    compute_claims_job(
        inputs=inputs,
        blocks=blocks,
        analysis={**config["analysis"], "sensitivity_factors": [0.5, 1.0, 2.0]},
        outputs={key: str(tmp_path / name) for key, name in outputs.items()},
        log_path=str(tmp_path / "claims.log"),
    )
    for name in outputs.values():
        assert (tmp_path / name).read_bytes() == (tables / name).read_bytes(), name


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_opens_offline_in_headless_chromium(workdir, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is missing in CI; .ci/run installs the Debian package `chromium`")
        pytest.skip("chromium not installed (apt-get install chromium); CI=true makes this a failure")
    copied = tmp_path / "copied_report"  # a copied folder, away from results/: nothing else to lean on
    shutil.copytree(workdir / "results" / "report", copied)
    page = (copied / "index.html").resolve()
    screenshot = tmp_path / "report.png"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=1",
            f"--screenshot={screenshot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "ERR_FILE_NOT_FOUND" not in log and "Failed to load resource" not in log
    loaded = re.findall(r"FileURLLoader::Start: (file://\S+)", log)
    if loaded:  # verbose loader logging present: the page itself is the only file it read
        assert set(loaded) == {page.as_uri()}, loaded
    from PIL import Image

    image = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.float64)
    assert image.shape[:2] == (2000, 1280)
    assert image.std() > 10, "the screenshot is blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50, "the screenshot is blank"


def test_standard_snakemake_report_builds(workdir):
    result = snakemake(workdir, "--report", "report.html", *SMOKE, timeout=200)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "ERROR" not in result.stdout, result.stdout[-3000:]
    html = (workdir / "report.html").read_text(encoding="utf-8", errors="replace")
    for name in FIGURES:
        assert f"{name}.png" in html
    assert "index.html" in html and "claims.tsv" in html


def test_report_lists_diverged_runs(workdir):
    html = (workdir / "results/report/index.html").read_text(encoding="utf-8")
    assert "<h2 id='diverged'>Diverged runs</h2><p>None" in html  # the smoke config diverges nowhere
    diverged = pd.DataFrame({"question": ["init"], "arm": ["diverge"], "seed": [2], "diverged_step": [13]})
    section = render_blocks(diverged_section(diverged))
    assert "1 training run(s) diverged" in section
    assert re.search(r"<td>init</td><td><code>diverge</code></td><td class=\"num\">2</td>"
                     r"<td class=\"num\">13</td>", section), section  # fmt: skip
