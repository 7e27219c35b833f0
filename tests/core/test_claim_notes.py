"""The literature and rule provenance beside every claim: complete, checked, true to git, and shown."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dlatoms.claims import checked_claim_notes, registered_claim_ids, with_claim_notes
from dlatoms.core import claim_notes
from dlatoms.core.claim_notes import ClaimNotesError
from dlatoms.core.report import Page, Section, claims_block, render
from dlatoms.core.verdicts import CLAIM_COLUMNS, CLAIM_DTYPES, claims_frame

ROOT = Path(__file__).resolve().parents[2]
LITERATURE = str(ROOT / "src/dlatoms/core/literature.yaml")
PROVENANCE = str(ROOT / "src/dlatoms/core/provenance.yaml")


@pytest.fixture(scope="module")
def raw() -> dict[str, dict]:
    return {
        "literature": yaml.safe_load(Path(LITERATURE).read_text()),
        "provenance": yaml.safe_load(Path(PROVENANCE).read_text()),
    }


@pytest.fixture(scope="module")
def notes() -> dict:
    return checked_claim_notes()


def test_every_registered_claim_has_literature_and_complete_provenance(notes):
    ids = registered_claim_ids()  # from the claim registries, not a list kept here
    assert not claim_notes.missing_entries(ids, notes["literature"]), "add them to literature.yaml"
    assert not claim_notes.missing_entries(ids, notes["provenance"]["claims"]), "add them to provenance.yaml"
    for claim_id in ids:
        parts = notes["provenance"]["claims"][claim_id]
        assert set(parts) == set(claim_notes.PARTS), claim_id


def test_every_commit_named_exists_in_git(notes):
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("no git checkout")
    named = set(claim_notes.commits_named(notes["provenance"]))
    # hashes quoted inside the 'what' texts too
    for parts in notes["provenance"]["claims"].values():
        for change in (c for changes in parts.values() for c in changes):
            named |= set(re.findall(r"\b[0-9a-f]{7,40}\b", change["what"]))
    for commit in sorted(named):
        found = subprocess.run(
            ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True
        )
        assert found.returncode == 0, f"provenance.yaml names commit {commit}, which git does not have"


def test_changes_after_a_result_say_what_was_recorded_before(notes):
    for claim_id, parts in notes["provenance"]["claims"].items():
        for part, changes in parts.items():
            for change in changes:
                if change["after_result"]:
                    assert change["verdict_before"], (claim_id, part)
                if change["commit"] == claim_notes.PENDING:
                    assert change["planned"], (claim_id, part)


def _error(check, data, path="x.yaml") -> str:
    with pytest.raises(ClaimNotesError) as caught:
        check(data, path, set(registered_claim_ids()))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda d: d["claims"].update({"9q": d["claims"]["1a"]}),
            ["claims.9q", "unknown claim id", "planned"],
        ),
        (lambda d: d["claims"]["1a"].pop("finding"), ["claims.1a.finding", "missing; add it"]),
        (
            lambda d: d["claims"]["2a"].update(agrees_if="opposite"),
            ["claims.2a.agrees_if", "'opposite' is not allowed", "supported, contradicted, not_studied"],
        ),
        (lambda d: d["claims"]["1b"].update(citation=""), ["claims.1b.citation", "set it"]),
        (lambda d: d["claims"]["1c"].update(year=2010), ["claims.1c.year", "unknown field; remove it"]),
    ],
    ids=["unknown_id", "missing_field", "bad_direction", "empty_citation", "unknown_field"],
)
def test_malformed_literature_is_one_line_naming_entry_field_and_fix(raw, edit, words):
    data = copy.deepcopy(raw["literature"])
    edit(data)
    message = _error(claim_notes.check_literature, data)
    assert all(w in message for w in words), message


def _first_change(data, claim_id="2a", part="rule_changed") -> dict:
    return data["claims"][claim_id][part][0]


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda d: _first_change(d, "1a").update(commit="pending", date=None),
            ["claims.1a.rule_changed[0].commit", "'pending' needs 'planned: true'"],
        ),
        (lambda d: _first_change(d).update(commit="HEAD~3"), ["rule_changed[0].commit", "not a commit hash"]),
        (lambda d: _first_change(d).update(date="yesterday"), ["rule_changed[0].date", "quote it"]),
        (
            lambda d: _first_change(d).update(after_result="yes"),
            ["rule_changed[0].after_result", "true or false"],
        ),
        (lambda d: _first_change(d).pop("verdict_before"), ["rule_changed[0].verdict_before", "missing"]),
        (lambda d: _first_change(d).update(verdict_before="fine"), ["verdict_before: 'fine' is not allowed"]),
        (
            lambda d: _first_change(d).update(source="nowhere"),
            ["source: 'nowhere' is not an entry of 'sources'"],
        ),
        (lambda d: d["claims"]["2a"].pop("arms_changed"), ["claims.2a.arms_changed", "missing or empty"]),
        (lambda d: d["claims"].update({"9q": d["claims"]["2a"]}), ["claims.9q", "unknown claim id"]),
    ],
    ids=[
        "pending_without_planned",
        "bad_commit",
        "bad_date",
        "after_result_not_bool",
        "no_verdict_before",
        "bad_verdict",
        "unknown_source",
        "part_missing",
        "unknown_id",
    ],
)
def test_malformed_provenance_is_one_line_naming_entry_field_and_fix(raw, edit, words):
    data = copy.deepcopy(raw["provenance"])
    edit(data)
    message = _error(claim_notes.check_provenance, data)
    assert all(w in message for w in words), message


def test_a_planned_claim_may_be_absent_from_the_registries(raw):
    data = copy.deepcopy(raw["literature"])
    data["claims"]["9q"] = {**data["claims"]["1a"], "planned": True}
    assert "9q" in claim_notes.check_literature(data, "x.yaml", set(registered_claim_ids()))


@pytest.mark.parametrize(
    "verdict, agrees_if, expected",
    [
        ("supported", "supported", "agrees"),
        ("contradicted", "supported", "disagrees"),
        ("contradicted", "contradicted", "agrees"),
        ("inconclusive", "supported", "no verdict"),
        ("not_measured", "contradicted", "no verdict"),
        ("supported", "not_studied", "not studied"),
        ("supported", None, "no entry"),
    ],
)
def test_agreement_follows_our_verdict_and_the_direction(verdict, agrees_if, expected):
    assert claim_notes.agreement(verdict, agrees_if) == expected


def fake_claims(verdicts: dict[str, str]) -> pd.DataFrame:
    """A claims table with the shared columns, one row per claim id and verdict."""
    rows = []
    for claim_id, verdict in verdicts.items():
        row = {column: "" for column in CLAIM_COLUMNS}
        row.update({c: 0 if t == "int64" else False if t == "bool" else "" for c, t in CLAIM_DTYPES.items()})
        numbers = ("statistic", "ci_low", "ci_high", "margin", "replication_statistic", "replication_ci_low")
        row.update({c: 0.0 for c in (*numbers, "replication_ci_high", "robust_share", "confidence")})
        row.update({c: 0.0 for c in ("top_rival_statistic", "top_rival_ci_low", "top_rival_ci_high")})
        row.update(n_seeds=10, replication_n_seeds=0, settings=3, beaten=False, confidence=0.95)
        row.update(claim_id=claim_id, question="init", kind="finding", verdict=verdict)
        row.update(replication_verdict="not_measured", statement=f"claim {claim_id}")
        rows.append(row)
    return claims_frame(rows)


def test_claims_table_gains_the_columns_and_the_report_shows_them(notes):
    claims = with_claim_notes(
        fake_claims({"1a": "supported", "2a": "supported", "1h": "inconclusive"}), notes
    )
    for column in (*claim_notes.LITERATURE_COLUMNS, *claim_notes.PROVENANCE_COLUMNS):
        assert column in claims.columns, column
    assert list(claims.columns[: len(CLAIM_COLUMNS)]) == CLAIM_COLUMNS  # the shared columns keep their place
    by_id = claims.set_index("claim_id")
    assert (
        by_id.loc["2a", "literature_agrees"] == "disagrees"
    )  # Raghu et al.: bottom-up, the reference's opposite
    assert by_id.loc["1a", "literature_agrees"] == "agrees"
    assert by_id.loc["1h", "literature_agrees"] == "not studied"
    assert by_id.loc["2a", "rule_changed"] == "9b83045 (2026-12-02)"
    assert by_id.loc["1a", "rule_changed"] == "05d11a0 (2026-12-06)"
    assert bool(by_id.loc["2a", "changed_after_result"])

    changes = claim_notes.rule_changes(claims, notes["provenance"])
    after = changes[changes["after_result"]]
    section = claim_notes.rule_changes_section(changes, claims)
    html = render(
        Page("t", "t", "t", [Section("claims", "Claims", [claims_block(claims, "95%", True)]), section])
    )
    assert "Rules changed after results were seen" in html
    assert "Raghu, Gilmer, Yosinski &amp; Sohl-Dickstein (2017)" in html
    assert "<b>Literature</b> (disagrees)" in html
    # every change after a result is listed, with the verdict recorded before it and this run's
    for row in after.itertuples():
        assert row.what.replace("'", "&#39;") in html, row.what
    assert "2a: supported → supported" in html
    assert "1h" not in set(after["claim_id"])  # first written with its result: not a post-result change


def test_collect_claims_job_writes_the_columns_and_the_changes(tmp_path, notes):
    from dlatoms.claims import collect_claims_job

    mlp = fake_claims({"1a": "supported", "2a": "supported"})
    finetune = fake_claims({"4c": "inconclusive"}).assign(question="finetune")
    inputs = []
    for name, table in (("mlp", mlp), ("finetune", finetune)):
        inputs.append(str(tmp_path / f"{name}.parquet"))
        table.to_parquet(inputs[-1])
    outputs = {name: str(tmp_path / f"{name}.{ext}") for name, ext in (("claims", "parquet"), ("tsv", "tsv"))}
    outputs["changes"] = str(tmp_path / "rule_changes.parquet")
    collect_claims_job(inputs, outputs, str(tmp_path / "log.txt"), notes)
    claims = pd.read_parquet(outputs["claims"])
    assert list(claims["claim_id"]) == ["1a", "2a", "4c"]
    assert list(claims["literature_agrees"]) == ["agrees", "disagrees", "no verdict"]
    assert claims["changed_after_result"].all()
    changes = pd.read_parquet(outputs["changes"])
    assert list(changes.columns) == claim_notes.CHANGE_COLUMNS
    assert set(changes["claim_id"]) == {"1a", "2a", "4c"}
    assert {"rule", "margin", "arms"} == set(changes["part"])
