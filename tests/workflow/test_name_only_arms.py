"""Two arms that differ in name only: no finding that one is better than the other may come out supported.

The real snakemake trains questions 1 and 3 on the smoke scale with renamed copies: `normal_0.01` and
`normal_1` are Xavier under other names, and the "strong" penalties `l1_1` and `l2_1` have strength 0.
Every claim that says one arm beats another by its margin must then be contradicted or inconclusive.
"""

from __future__ import annotations

import pandas as pd
import yaml
from workflow_helpers import copy_workflow, snakemake

from dlatoms.core.verdicts import SUPPORTED

# Claims whose finding is "arm A is better (or smaller, or sparser) than arm B by the margin".
SUPERIORITY_CLAIMS = ("1a+", "1b", "1c", "1h", "3a", "3c", "3d")


def test_arms_differing_in_name_only_support_no_superiority_finding(tmp_path):
    workdir = copy_workflow(tmp_path / "run")
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    xavier = {"name": "xavier_uniform"}
    config["init"]["arms"] = [
        {"name": "xavier", "init": xavier},
        {"name": "zeros", "init": {"name": "zeros"}},
        {"name": "ones", "init": {"name": "ones"}},
        {"name": "normal_0.01", "init": xavier},  # a copy of xavier in all but name
        {"name": "normal_1", "init": xavier},
    ]
    config["regularization"]["arms"] = [
        {"name": "l1_0", "penalty": {"name": "l1", "strength": 0.0}},
        {"name": "l1_1", "penalty": {"name": "l1", "strength": 0.0}},  # "strong" L1 that is no penalty
        {"name": "l2_0", "penalty": {"name": "l2", "strength": 0.0}},
        {"name": "l2_1", "penalty": {"name": "l2", "strength": 0.0}},
    ]
    (workdir / "config/names.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(
        workdir, "--configfile", "config/names.yaml", "--cores", "2", "results/tables/mlp_claims.parquet"
    )
    assert run.returncode == 0, run.stdout[-3000:]
    claims = pd.read_parquet(workdir / "results/tables/mlp_claims.parquet").set_index("claim_id")
    for claim_id in SUPERIORITY_CLAIMS:
        row = claims.loc[claim_id]
        assert row["verdict"] != SUPPORTED, (claim_id, row["detail"])
        assert row["replication_verdict"] != SUPPORTED, (claim_id, row["replication_detail"])
