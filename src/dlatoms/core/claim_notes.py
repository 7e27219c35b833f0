"""What stands beside every claim: the published literature and the history of its rule.

Two data files ship with the package, each keyed by claim id:

- ``literature.yaml``: a citation, a one-line statement of what that work found, and ``agrees_if``, the
  verdict of ours that would agree with it (``supported`` or ``contradicted``), or ``not_studied`` where no
  published work we know of speaks to the claim;
- ``provenance.yaml``: when the claim's rule, its margin (the ``analysis`` settings it names) and its arms
  were last changed (``rule_changed``, ``margin_changed``, ``arms_changed``: lists of changes, newest
  first), and whether each change came after a result of the claim had been seen, with the verdict recorded
  before it (``verdict_before``) and where that verdict was recorded (``source``, a key of ``sources``).

`check_literature` and `check_provenance` raise `ClaimNotesError`, one line naming the file, the entry, the
field and the fix, while Snakemake reads the workflow. Claim ids are checked against the ids a caller
passes (the claim registries, `dlatoms.claims.registered_claim_ids`); an entry for a claim that is not in
a registry yet must say ``planned: true``. A change whose commit is not known yet (``commit: pending``)
must say ``planned: true`` too. `literature_columns`, `provenance_columns` and `rule_changes` turn them into
the columns of the claims table and the table of changes the report lists.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

LITERATURE_FILE = "literature.yaml"
PROVENANCE_FILE = "provenance.yaml"

SUPPORTED, CONTRADICTED, NOT_STUDIED = "supported", "contradicted", "not_studied"
DIRECTIONS = (SUPPORTED, CONTRADICTED, NOT_STUDIED)
# What literature_agrees holds: our verdict beside the direction of the work.
AGREES, DISAGREES, NO_VERDICT, NOT_STUDIED_TEXT, NO_ENTRY = (
    "agrees",
    "disagrees",
    "no verdict",
    "not studied",
    "no entry",
)
LITERATURE_FIELDS = ("citation", "finding", "agrees_if")
PARTS = ("rule_changed", "margin_changed", "arms_changed")
PENDING = "pending"
NOT_RECORDED = "not recorded"
RECORDED_VERDICTS = ("supported", "contradicted", "inconclusive", "not_measured", NOT_RECORDED)
CHANGE_FIELDS = ("commit", "date", "after_result", "what")
CHANGE_OPTIONAL = ("planned", "verdict_before", "source", "claim_before")
SOURCE_FIELDS = ("commit", "date", "file", "quote")
COMMIT = re.compile(r"[0-9a-f]{7,40}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}")

LITERATURE_COLUMNS = ["literature", "literature_finding", "literature_agrees"]
PROVENANCE_COLUMNS = ["rule_changed", "margin_changed", "arms_changed", "changed_after_result"]
CHANGE_COLUMNS = [
    "claim_id",
    "part",
    "commit",
    "date",
    "planned",
    "after_result",
    "what",
    "verdict_before",
    "claim_before",
    "source",
    "source_quote",
]


class ClaimNotesError(ValueError):
    """A malformed literature or provenance file; the message names the file, entry, field and fix."""


def _package_file(name: str) -> str:
    return str(importlib.resources.files("dlatoms.core") / name)


def read_notes(path: str) -> dict:
    """The parsed YAML file (a mapping), or ClaimNotesError naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ClaimNotesError(f"{path}: not found; restore it from git (it ships with dlatoms)") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ClaimNotesError(f"{path}: not valid YAML{line}; fix the syntax there") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), dict):
        raise ClaimNotesError(f"{path}: no 'claims:' mapping of claim id -> entry; add one at the top level")
    return data


def _check_ids(path: str, claims: Mapping, known: Collection[str] | None) -> None:
    for claim_id, entry in claims.items():
        if not isinstance(entry, dict):
            raise ClaimNotesError(
                f"{path}: claims.{claim_id}: is not a mapping; give its fields as key: value"
            )
        planned = entry.get("planned", False)
        if not isinstance(planned, bool):
            raise ClaimNotesError(
                f"{path}: claims.{claim_id}.planned: {planned!r} is not true or false; set it"
            )
        if known is not None and str(claim_id) not in known and not planned:
            close = sorted(known, key=lambda k: (k[:2] != str(claim_id)[:2], k))[:6]
            raise ClaimNotesError(
                f"{path}: claims.{claim_id}: unknown claim id (no claim registry has it); use an id of "
                f"dlatoms.mlp.claims.CLAIMS or dlatoms.finetune.claims.CLAIMS (e.g. {', '.join(close)}), "
                "or add 'planned: true' for a claim that is being added"
            )


def check_literature(data: Mapping, path: str, known: Collection[str] | None = None) -> dict[str, dict]:
    """The literature entries by claim id; ClaimNotesError on an unknown id, missing field or bad value."""
    claims = data["claims"]
    _check_ids(path, claims, known)
    entries = {}
    for claim_id, entry in claims.items():
        where = f"{path}: claims.{claim_id}"
        for name in LITERATURE_FIELDS:
            if name not in entry:
                raise ClaimNotesError(f"{where}.{name}: missing; add it ({_literature_hint(name)})")
            value = entry[name]
            if not isinstance(value, str) or not value.strip():
                raise ClaimNotesError(
                    f"{where}.{name}: {value!r} is not a text; set it ({_literature_hint(name)})"
                )
        unknown = sorted(set(entry) - {*LITERATURE_FIELDS, "planned"})
        if unknown:
            raise ClaimNotesError(
                f"{where}.{unknown[0]}: unknown field; remove it (allowed: "
                f"{', '.join(LITERATURE_FIELDS)}, planned)"
            )
        if entry["agrees_if"] not in DIRECTIONS:
            raise ClaimNotesError(
                f"{where}.agrees_if: {entry['agrees_if']!r} is not allowed; choose one of "
                f"{', '.join(DIRECTIONS)}"
            )
        entries[str(claim_id)] = {name: str(entry[name]).strip() for name in LITERATURE_FIELDS}
    return entries


def _literature_hint(name: str) -> str:
    return {
        "citation": "authors, year, title, venue",
        "finding": "one line: what that work found",
        "agrees_if": f"the verdict of ours that agrees with it: {', '.join(DIRECTIONS)}",
    }[name]


def _check_change(where: str, change: Any, sources: Mapping) -> dict:
    if not isinstance(change, dict):
        raise ClaimNotesError(f"{where}: is not a mapping; give commit, date, after_result, what")
    for name in CHANGE_FIELDS:
        if name not in change:
            raise ClaimNotesError(f"{where}.{name}: missing; add it ({_change_hint(name)})")
    unknown = sorted(set(change) - {*CHANGE_FIELDS, *CHANGE_OPTIONAL})
    if unknown:
        allowed = ", ".join((*CHANGE_FIELDS, *CHANGE_OPTIONAL))
        raise ClaimNotesError(f"{where}.{unknown[0]}: unknown field; remove it (allowed: {allowed})")
    planned = change.get("planned", False)
    if not isinstance(planned, bool):
        raise ClaimNotesError(f"{where}.planned: {planned!r} is not true or false; set it")
    commit = str(change["commit"])
    if commit == PENDING:
        if not planned:
            raise ClaimNotesError(
                f"{where}.commit: 'pending' needs 'planned: true' beside it; set the commit's hash, or "
                "add planned: true for a change not committed yet"
            )
        if change["date"] is not None:
            raise ClaimNotesError(f"{where}.date: a pending change has no date; set it to null")
    else:
        if not COMMIT.fullmatch(commit):
            raise ClaimNotesError(
                f"{where}.commit: {change['commit']!r} is not a commit hash; set it to 7-40 lowercase hex "
                "digits (git log --format=%h), or 'pending' with planned: true"
            )
        if not isinstance(change["date"], str) or not DATE.fullmatch(change["date"]):
            raise ClaimNotesError(
                f"{where}.date: {change['date']!r} is not a commit date; quote it as git log --date=iso "
                "writes it, e.g. '2026-12-02 01:55:01 +0000'"
            )
    if not isinstance(change["after_result"], bool):
        raise ClaimNotesError(
            f"{where}.after_result: {change['after_result']!r} is not true or false; set it (true when a "
            "result of the claim had been seen before the change)"
        )
    if not isinstance(change["what"], str) or not change["what"].strip():
        raise ClaimNotesError(f"{where}.what: {change['what']!r} is not a text; say what changed")
    verdict = change.get("verdict_before")
    if change["after_result"] and verdict is None:
        raise ClaimNotesError(
            f"{where}.verdict_before: missing for a change after a result; add the verdict recorded before "
            f"it ({', '.join(RECORDED_VERDICTS)})"
        )
    if verdict is not None and verdict not in RECORDED_VERDICTS:
        raise ClaimNotesError(
            f"{where}.verdict_before: {verdict!r} is not allowed; choose one of "
            f"{', '.join(RECORDED_VERDICTS)}"
        )
    source = change.get("source")
    if verdict not in (None, NOT_RECORDED) and source is None:
        raise ClaimNotesError(
            f"{where}.source: missing; name the entry of 'sources' that records verdict_before "
            f"({', '.join(sources) or 'none defined'})"
        )
    if source is not None and source not in sources:
        raise ClaimNotesError(
            f"{where}.source: {source!r} is not an entry of 'sources'; use one of "
            f"{', '.join(sources) or 'none defined: add a sources: mapping'}"
        )
    return {
        "commit": commit,
        "date": change["date"],
        "planned": planned,
        "after_result": change["after_result"],
        "what": change["what"].strip(),
        "verdict_before": verdict or "",
        "claim_before": str(change.get("claim_before") or ""),
        "source": source or "",
    }


def _change_hint(name: str) -> str:
    return {
        "commit": "the hash of the commit that made the change, or 'pending' with planned: true",
        "date": "the commit date as git log --date=iso writes it, quoted; null when pending",
        "after_result": "true when a result of the claim had been seen before the change",
        "what": "one line: what changed",
    }[name]


def check_provenance(data: Mapping, path: str, known: Collection[str] | None = None) -> dict[str, Any]:
    """{"sources": ..., "claims": {id: {part: [change, ...]}}}; ClaimNotesError on any malformed entry."""
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise ClaimNotesError(
            f"{path}: sources: is not a mapping; give name -> {{{', '.join(SOURCE_FIELDS)}}}"
        )
    for name, source in sources.items():
        where = f"{path}: sources.{name}"
        if not isinstance(source, dict):
            raise ClaimNotesError(f"{where}: is not a mapping; give {', '.join(SOURCE_FIELDS)}")
        for field in SOURCE_FIELDS:
            if not isinstance(source.get(field), str) or not source[field].strip():
                raise ClaimNotesError(f"{where}.{field}: missing or not a text; add it")
        if not COMMIT.fullmatch(source["commit"]):
            raise ClaimNotesError(
                f"{where}.commit: {source['commit']!r} is not a commit hash; set 7-40 hex digits"
            )
    claims = data["claims"]
    _check_ids(path, claims, known)
    entries: dict[str, dict[str, list[dict]]] = {}
    for claim_id, entry in claims.items():
        planned_claim = entry.get("planned", False)
        unknown = sorted(set(entry) - {*PARTS, "planned"})
        if unknown:
            raise ClaimNotesError(
                f"{path}: claims.{claim_id}.{unknown[0]}: unknown field; remove it (allowed: "
                f"{', '.join(PARTS)}, planned)"
            )
        parts = {}
        for part in PARTS:
            where = f"{path}: claims.{claim_id}.{part}"
            changes = entry.get(part)
            if changes is None and planned_claim:
                continue
            if not isinstance(changes, list) or not changes:
                raise ClaimNotesError(
                    f"{where}: missing or empty; add a list of its changes, newest first (the first is the "
                    "last change)"
                )
            parts[part] = [_check_change(f"{where}[{i}]", c, sources) for i, c in enumerate(changes)]
        entries[str(claim_id)] = parts
    return {"sources": {str(k): dict(v) for k, v in sources.items()}, "claims": entries}


def load_literature(path: str | None = None, known: Collection[str] | None = None) -> dict[str, dict]:
    """The package's literature.yaml (or `path`), checked."""
    path = path or _package_file(LITERATURE_FILE)
    return check_literature(read_notes(path), path, known)


def load_provenance(path: str | None = None, known: Collection[str] | None = None) -> dict[str, Any]:
    """The package's provenance.yaml (or `path`), checked."""
    path = path or _package_file(PROVENANCE_FILE)
    return check_provenance(read_notes(path), path, known)


def commits_named(provenance: Mapping) -> list[str]:
    """Every commit hash the provenance names (changes and sources), pending ones left out."""
    named = [s["commit"] for s in provenance["sources"].values()]
    for parts in provenance["claims"].values():
        named += [c["commit"] for changes in parts.values() for c in changes if c["commit"] != PENDING]
    return sorted(set(named))


# ---------------------------------------------------------------------------------------------- columns


def agreement(verdict: str, agrees_if: str | None) -> str:
    """agrees / disagrees / no verdict / not studied: our verdict beside the direction of the literature."""
    if agrees_if is None:
        return NO_ENTRY
    if agrees_if == NOT_STUDIED:
        return NOT_STUDIED_TEXT
    if verdict not in (SUPPORTED, CONTRADICTED):
        return NO_VERDICT
    return AGREES if verdict == agrees_if else DISAGREES


def literature_columns(claims: pd.DataFrame, literature: Mapping[str, Mapping]) -> pd.DataFrame:
    """`claims` with literature (citation), literature_finding and literature_agrees."""
    out = claims.copy()
    entries = [literature.get(str(c)) for c in out["claim_id"]]
    out["literature"] = [e["citation"] if e else "" for e in entries]
    out["literature_finding"] = [e["finding"] if e else "" for e in entries]
    out["literature_agrees"] = [
        agreement(str(v), e["agrees_if"] if e else None) for v, e in zip(out["verdict"], entries, strict=True)
    ]
    return out


def change_text(change: Mapping | None) -> str:
    """'9b83045 (2026-12-02)', 'pending (planned)', or '' when not recorded."""
    if not change:
        return ""
    if change["commit"] == PENDING:
        return "pending (planned)"
    return f"{change['commit']} ({change['date'][:10]})"


def provenance_columns(claims: pd.DataFrame, provenance: Mapping) -> pd.DataFrame:
    """`claims` with the last change of rule, margin and arms, and whether any came after a result."""
    out = claims.copy()
    recorded = [provenance["claims"].get(str(c), {}) for c in out["claim_id"]]
    for part in PARTS:
        out[part] = [change_text((parts.get(part) or [None])[0]) for parts in recorded]
    out["changed_after_result"] = [
        any(c["after_result"] for changes in parts.values() for c in changes) for parts in recorded
    ]
    return out


def rule_changes(claims: pd.DataFrame, provenance: Mapping) -> pd.DataFrame:
    """One row per recorded change of a claim in `claims` (every part, newest first), with its source."""
    rows = []
    sources = provenance["sources"]
    for claim_id in claims["claim_id"].astype(str):
        for part, changes in provenance["claims"].get(claim_id, {}).items():
            for change in changes:
                source = sources.get(change["source"], {})
                rows.append(
                    {
                        "claim_id": claim_id,
                        "part": part.removesuffix("_changed"),
                        **{k: change[k] for k in ("commit", "planned", "after_result", "what")},
                        "date": change["date"] or "",
                        "verdict_before": change["verdict_before"],
                        "claim_before": change["claim_before"],
                        "source": (
                            f"{source['file']} at {source['commit']} ({source['date'][:10]})"
                            if source
                            else ""
                        ),
                        "source_quote": source.get("quote", ""),
                    }
                )
    frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    return frame.astype({"planned": "bool", "after_result": "bool"})


def missing_entries(claim_ids: Sequence[str], notes: Mapping) -> list[str]:
    """The ids of `claim_ids` without an entry in `notes` (literature entries or provenance claims)."""
    entries = notes.get("claims", notes)
    return [c for c in claim_ids if c not in entries]


# ---------------------------------------------------------------------------------------------- report


def rule_changes_section(changes: pd.DataFrame | None, claims: pd.DataFrame):
    """The report section listing every change made after a result was seen, verdicts before and now.

    One row per change (commit, part and what; claims that shared it are listed together), newest first;
    "before" is the verdict the history recorded (its source below the table), "now" this run's verdict.
    """
    from dlatoms.core.report import Paragraph, Section, Table, code, markup

    title = "Rules changed after results were seen"
    if changes is None or "changed_after_result" not in claims.columns:
        text = "This run's claims table carries no rule provenance (it was written by an older dlatoms)."
        return Section("rule-changes", title, [Paragraph(text)])
    after = changes[changes["after_result"].astype(bool)]
    now = dict(zip(claims["claim_id"].astype(str), claims["verdict"].astype(str), strict=True))
    changed = [c for c in claims["claim_id"].astype(str) if c in set(after["claim_id"])]
    planned = after[after["planned"].astype(bool)]
    intro = markup(
        "Each claim's rule, margin (the <code>analysis</code> settings it names) and arms carry the commit "
        "that last changed them (columns <code>rule_changed</code>, <code>margin_changed</code>, "
        "<code>arms_changed</code>, <code>changed_after_result</code> of the claims table; the history in "
        "<code>src/dlatoms/core/provenance.yaml</code>). {} of {} claims had one of them changed after a "
        "result of the claim had been seen; {} of those changes are planned and not committed yet. Below, "
        "every such change, newest first, with the verdict recorded before it (from the history; its "
        "source under the table) and this run's verdict; the verdicts before were recorded on the default "
        "config, so they compare with this run's only when it ran that config. A rule changed after its "
        "result was seen is not a rule written down before the result; read those verdicts with that in "
        "mind.",
        len(changed),
        len(claims),
        planned.drop_duplicates(["commit", "part", "what"]).shape[0],
    )
    blocks: list = [Paragraph(intro)]
    rows = []
    order = after.assign(_pending=after["commit"] == PENDING).sort_values(
        ["_pending", "date"], ascending=[False, False], kind="stable"
    )
    for (commit, part, what), group in order.groupby(["commit", "part", "what"], sort=False):
        date = group["date"].iloc[0]
        when = "pending (planned)" if commit == PENDING else f"{commit} ({str(date)[:10]})"
        verdicts = []
        for row in group.itertuples():
            before = row.verdict_before or NOT_RECORDED
            of = f"{row.claim_before} " if row.claim_before else ""
            verdicts.append(f"{row.claim_id}: {of}{before} → {now.get(row.claim_id, 'not in this run')}")
        rows.append([code(when), part, what, "; ".join(verdicts)])
    if rows:
        blocks.append(Table(["change", "of", "what changed", "claim: verdict before → now"], rows))
    else:
        blocks.append(Paragraph("No claim's rule, margin or arms changed after a result of it was seen."))
    used = after.loc[after["source"] != "", ["source", "source_quote"]].drop_duplicates()
    if len(used):
        sources = "; ".join(f"{r.source}: “{r.source_quote}”" for r in used.itertuples())
        blocks.append(Paragraph(f"Where the verdicts before were recorded: {sources}.", note=True))
    return Section("rule-changes", title, blocks)
