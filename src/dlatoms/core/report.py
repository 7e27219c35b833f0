"""The report skeleton: plain page data (sections of tables, figures, claims) rendered by one Jinja2 template.

The look of the page lives in templates/report.html.j2 (markup and CSS); the question packages only gather
words and numbers into these data classes. Autoescaping is on: a plain `str` is always escaped, and only
`Markup` built with `markup()` (which escapes its arguments) carries inline tags such as <code>.
"""

from __future__ import annotations

import base64
import importlib.resources
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from dlatoms.core.verdicts import both_measured, is_robust

VERDICT_COLORS = {  # Okabe-Ito: distinguishable with colour-blindness; the word is always printed too
    "supported": "#0072B2",
    "contradicted": "#D55E00",
    "inconclusive": "#6b6b6b",
    "not_measured": "#999999",
    "not_applicable": "#e6e6e6",  # the verdict atlas only: the claim's question is not defined there
}

Text = str | Markup  # a str is escaped by the template; Markup is trusted inline markup


def markup(template: str, *args: object) -> Markup:
    """Inline markup (e.g. "<code>{}</code>") with every argument escaped."""
    return Markup(template).format(*args)


def code(value: object) -> Markup:
    return markup("<code>{}</code>", value)


def bold(value: object) -> Markup:
    return markup("<b>{}</b>", value)


def fmt_number(value: float, digits: int = 3) -> str:
    """`digits` significant digits, whole numbers from 1000 on (step counts, seconds)."""
    if pd.isna(value):
        return "–"
    if abs(value) >= 10**digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def fmt_interval(mean: float, low: float, high: float) -> str:
    return f"{fmt_number(mean)} [{fmt_number(low)}, {fmt_number(high)}]"


def seed_list(seeds: Sequence[int]) -> str:
    """ "20 (0, 1, 2, 3, 4, 5, …)": how many seeds, the first few."""
    shown = ", ".join(str(s) for s in seeds[:6]) + (", …" if len(seeds) > 6 else "")
    return f"{len(seeds)} ({shown})" if seeds else "none"


def confidence_label(analysis: Mapping) -> str:
    """The configured confidence level as the report prints it: 0.95 -> "95%"."""
    return f"{100 * float(analysis['confidence']):g}%"


@dataclass(frozen=True)
class Heading:
    text: Text
    level: int = 3
    kind: str = field(default="heading", init=False)


@dataclass(frozen=True)
class Paragraph:
    text: Text
    note: bool = False  # a highlighted note box
    kind: str = field(default="paragraph", init=False)


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Text]]
    numeric: Sequence[int] = ()  # right-aligned columns
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class Figure:
    name: str
    question: str  # the question whose section shows it
    title: str
    caption: str
    data_uri: str
    width: int  # CSS pixels
    source: str  # the PNG path it embeds
    kind: str = field(default="figure", init=False)

    @property
    def folder(self) -> str:
        return str(Path(self.source).parent)


@dataclass(frozen=True)
class ClaimRow:
    claim_id: str
    kind: str  # finding or check
    statement: str
    measure: str
    rule: str
    detail: str
    replication_detail: str
    interval: str
    seeds: int
    margin: str
    verdict: str
    replication_interval: str
    replication_seeds: int
    replication_verdict: str
    robust_share: str  # e.g. "0.96 (27 settings)"
    robust: bool  # a supported or contradicted verdict kept in >= ROBUST_SHARE of the threshold settings
    differs: bool  # both blocks reached a verdict, and the replication verdict differs
    confidence: str  # this claim's level (differs from the block's under Holm)
    reference: str
    literature: str = ""  # citation of published work on the claim (core/literature.yaml); "" when none
    literature_finding: str = ""
    literature_agrees: str = ""  # agrees / disagrees / no verdict / not studied (claim_notes.agreement)
    beaten: str = ""  # "best" claims whose top rival is better: "beaten by X: d [low, high]"


@dataclass(frozen=True)
class Claims:
    rows: Sequence[ClaimRow]
    confidence: str  # e.g. "95%"
    full: bool  # full rows carry the anchor and how each claim is measured; others link to them
    kind: str = field(default="claims", init=False)


Block = Heading | Paragraph | Table | Figure | Claims


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: Sequence[Block]


@dataclass(frozen=True)
class Page:
    title: str
    heading: str
    intro: Text
    sections: Sequence[Section]


@dataclass(frozen=True)
class ReportInputs:
    """What every question's section builder reads."""

    tables: Mapping[str, pd.DataFrame]  # "claims" (every question) and each question's own tables
    figures: Mapping[str, Figure]  # embedded figures by name
    benchmarks: pd.DataFrame  # read_benchmarks()
    settings: Mapping  # the config values the report states (rule params)

    @property
    def confidence(self) -> str:
        return confidence_label(self.settings["analysis"])


def _interval_text(statistic: float, low: float, high: float, seeds: int) -> str:
    return "–" if seeds == 0 else fmt_interval(statistic, low, high)


def _beaten_text(row: pd.Series) -> str:
    """'beaten by X: d [low, high]' where a "best" claim's pair interval against its top rival is below 0."""
    if not bool(row.get("beaten", False)):
        return ""
    interval = fmt_interval(row["top_rival_statistic"], row["top_rival_ci_low"], row["top_rival_ci_high"])
    return f"beaten by {row['top_rival']}: {interval}"


def claims_block(claims: pd.DataFrame, confidence: str, full: bool) -> Claims:
    """Our verdicts (discovery, replication, robustness) beside the reference's conclusion, one row each."""
    rows = []
    for _, row in claims.iterrows():
        robust = row["robust_share"]
        rows.append(
            ClaimRow(
                claim_id=str(row["claim_id"]),
                kind=str(row["kind"]),
                statement=str(row["statement"]),
                measure=str(row["measure"]),
                rule=str(row["rule"]),
                detail=str(row["detail"]),
                replication_detail=str(row["replication_detail"]),
                interval=_interval_text(row["statistic"], row["ci_low"], row["ci_high"], row["n_seeds"]),
                seeds=int(row["n_seeds"]),
                margin=fmt_number(row["margin"]),
                verdict=str(row["verdict"]),
                replication_interval=_interval_text(
                    row["replication_statistic"],
                    row["replication_ci_low"],
                    row["replication_ci_high"],
                    row["replication_n_seeds"],
                ),
                replication_seeds=int(row["replication_n_seeds"]),
                replication_verdict=str(row["replication_verdict"]),
                robust_share="–" if pd.isna(robust) else f"{robust:.2f} ({int(row['settings'])} settings)",
                robust=is_robust(str(row["verdict"]), float(robust)),
                differs=both_measured(str(row["verdict"]), str(row["replication_verdict"]))
                and str(row["verdict"]) != str(row["replication_verdict"]),
                confidence=f"{100 * float(row['confidence']):.4g}%",
                reference=str(row["reference_conclusion"]),
                literature=str(row.get("literature", "")),
                literature_finding=str(row.get("literature_finding", "")),
                literature_agrees=str(row.get("literature_agrees", "")),
                beaten=_beaten_text(row),
            )
        )
    return Claims(rows, confidence, full)


def settings_table(values: Mapping) -> Table:
    """One row per scalar setting (nested sections are described elsewhere)."""
    rows = [[code(k), str(v)] for k, v in values.items() if not isinstance(v, (dict, list))]
    return Table(["setting", "value"], rows)


def _png_width(png: bytes) -> int:
    """Pixel width from the PNG header (IHDR is always the first chunk)."""
    return int.from_bytes(png[16:20], "big")


def embed_figure(name: str, question: str, path: str, dpi: float, title: str, caption: str) -> Figure:
    """The PNG inline as a data URI, shown at its physical size (CSS has 96 px per inch)."""
    png = Path(path).read_bytes()
    data = base64.b64encode(png).decode("ascii")
    width = round(_png_width(png) * 96 / dpi)
    return Figure(name, question, title, caption, f"data:image/png;base64,{data}", width, str(path))


def read_benchmarks(paths: Sequence[str]) -> pd.DataFrame:
    """One row per benchmarked job: rule, job (its wildcards as a path), seconds."""
    rows = []
    for path in paths:
        frame = pd.read_csv(path, sep="\t")
        parts = Path(path).with_suffix("").parts
        start = parts.index("benchmarks") + 1 if "benchmarks" in parts else 0
        rule, job = parts[start], "/".join(parts[start + 1 :])
        rows.append({"rule": rule, "job": job, "seconds": float(frame["s"].mean()), "path": str(path)})
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "path"])


def _environment() -> jinja2.Environment:
    templates = importlib.resources.files("dlatoms.core") / "templates"
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (templates / name).read_text(encoding="utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(page: Page) -> str:
    """The whole report as one self-contained HTML string."""
    template = _environment().get_template("report.html.j2")
    return template.render(page=page, verdict_colors=VERDICT_COLORS)
