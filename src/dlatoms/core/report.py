"""The final report: one self-contained HTML file (figures embedded as data URIs, no network, no scripts)."""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

VERDICT_COLORS = {  # Okabe-Ito: distinguishable with colour-blindness; the word is always printed too
    "supported": "#0072B2",
    "contradicted": "#D55E00",
    "inconclusive": "#6b6b6b",
    "not_measured": "#999999",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .55em; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { color: #fff; border-radius: .3em; padding: .1em .45em; font-weight: 600; white-space: nowrap; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; }
details { margin: .3em 0; }
.note { background: #f6f8fa; border-left: 4px solid #0072B2; padding: .5em .9em; }
code { background: #f3f3f3; padding: 0 .2em; }
"""


def esc(value) -> str:
    return html.escape(str(value))


def fmt_number(value: float, digits: int = 3) -> str:
    """`digits` significant digits, whole numbers from 1000 on (step counts, seconds)."""
    if pd.isna(value):
        return "–"
    if abs(value) >= 10**digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _verdict(verdict: str) -> str:
    color = VERDICT_COLORS.get(verdict, "#444")
    return f'<span class="verdict" style="background:{color}">{esc(verdict.replace("_", " "))}</span>'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _interval(row) -> str:
    if row["n_seeds"] == 0:
        return "–"
    return f"{fmt_number(row['statistic'])} [{fmt_number(row['ci_low'])}, {fmt_number(row['ci_high'])}]"


def claims_table(claims: pd.DataFrame, full: bool) -> str:
    """Our verdict beside the reference's conclusion; `full` adds how it is measured and decided."""
    rows = []
    for _, row in claims.iterrows():
        statement = f"<strong>{esc(row['statement'])}</strong>"
        if full:
            statement += (
                "<details><summary>measure, rule, numbers</summary>"
                f"<p><b>Measure.</b> {esc(row['measure'])}</p>"
                f"<p><b>Verdict rule.</b> {esc(row['rule'])}</p><p><b>Numbers.</b> {esc(row['detail'])}</p>"
                "</details>"
            )
        claim_id = esc(row["claim_id"])
        anchor = (
            f'<span id="claim-{claim_id}">{claim_id}</span>'
            if full
            else f'<a href="#claim-{claim_id}">{claim_id}</a>'
        )
        rows.append(
            [
                anchor,
                statement,
                _interval(row),
                str(int(row["n_seeds"])),
                _verdict(row["verdict"]),
                esc(row["reference_conclusion"]),
            ]
        )
    headers = ["claim", "statement", "statistic [95% CI]", "seeds", "our verdict", "reference's conclusion"]
    return html_table(headers, rows, numeric=(2, 3))


def _png_width(png: bytes) -> int:
    """Pixel width from the PNG header (IHDR is always the first chunk)."""
    return int.from_bytes(png[16:20], "big")


def embedded_figure(name: str, path: str, dpi: float, title: str, caption: str) -> str:
    """The PNG inline as a data URI, shown at its physical size (CSS has 96 px per inch)."""
    png = Path(path).read_bytes()
    data = base64.b64encode(png).decode("ascii")
    width = round(_png_width(png) * 96 / dpi)
    return (
        f'<figure id="figure-{esc(name)}"><img src="data:image/png;base64,{data}" alt="{esc(title)}" '
        f'width="{width}" data-figure="{esc(name)}" data-source="{esc(path)}">'
        f"<figcaption><b>{esc(title)}.</b> {esc(caption)} "
        f"(<code>{esc(name)}</code>; PNG and SVG in <code>{esc(str(Path(path).parent))}</code>)"
        "</figcaption></figure>"
    )


def _settings_table(values: Mapping) -> str:
    rows = [[f"<code>{esc(k)}</code>", esc(v)] for k, v in values.items() if not isinstance(v, (dict, list))]
    return html_table(["setting", "value"], rows)


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
