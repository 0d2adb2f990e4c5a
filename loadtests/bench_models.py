"""Benchmark of model training: `crm train all` wall time and peak memory in its own process, then
`crm models evaluate --json` against the ground truth, on a CRM_HOME whose features are built and applied.

Targets at 100,000 clients: the three models trained in ≤ 300 s; churn test AUC within 0.03 of the oracle AUC;
cause accuracy ≥ 0.70; risk-profile accuracy against the truth above the questionnaire's own.
Usage: python loadtests/bench_models.py --home DIR (for example the folder bench_features.py used).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _timing import report, timed  # run as a script: the folder is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_HOME": str(args.home)}
    result: dict = {}
    result["train_seconds"], result["train_peak_memory_gb"] = timed([crm, "train", "all"], env)
    evaluation = subprocess.run([crm, "models", "evaluate", "--json"], env=env, check=True, capture_output=True,
                                text=True)
    figures = json.loads(evaluation.stdout.strip().splitlines()[-1])
    result["evaluation"] = figures
    churn, risk = figures["churn"], figures["risk_profile"]
    result["met"] = {
        "train_seconds": result["train_seconds"] <= 300,
        "churn_auc_within_0.03_of_oracle": churn["oracle_auc"] - churn["auc"] <= 0.03,
        "cause_accuracy_at_least_0.70": churn["cause_accuracy"] >= 0.70,
        "risk_beats_questionnaire": risk["accuracy"] > risk["questionnaire_accuracy"],
    }
    report(result, args.home, "models")


if __name__ == "__main__":
    main()
