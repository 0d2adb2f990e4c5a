"""Benchmark of model training: `crm train churn|value|risk` and then `crm train retention_uplift`, wall time
and peak memory each in its own process, then `crm models evaluate --json` against the ground truth, on a
CRM_HOME whose features are built and applied.

Targets at 100,000 clients: the three models trained in ≤ 300 s and the uplift model in ≤ 120 s; churn test AUC
within 0.03 of the oracle AUC; cause accuracy ≥ 0.70, cause macro recall ≥ 0.75 with every cause ≥ 0.65;
risk-profile accuracy against the truth above the questionnaire's own; uplift Qini ≥ 0.7 × the oracle's.
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
    seconds, peaks = [], []
    for model in ("churn", "value", "risk"):
        took, peak = timed([crm, "train", model], env)
        seconds.append(took)
        peaks.append(peak)
    result["train_seconds"], result["train_peak_memory_gb"] = sum(seconds), max(peaks)
    result["uplift_train_seconds"], result["uplift_train_peak_memory_gb"] = timed(
        [crm, "train", "retention_uplift"], env)
    evaluation = subprocess.run([crm, "models", "evaluate", "--json"], env=env, check=True, capture_output=True,
                                text=True)
    figures = json.loads(evaluation.stdout.strip().splitlines()[-1])
    result["evaluation"] = figures
    churn, risk, uplift = figures["churn"], figures["risk_profile"], figures["uplift"]
    result["met"] = {
        "train_seconds": result["train_seconds"] <= 300,
        "uplift_train_seconds": result["uplift_train_seconds"] <= 120,
        "cause_macro_recall_at_least_0.75": churn["cause_macro_recall"] >= 0.75,
        "every_cause_recall_at_least_0.65": min(churn["cause_recall"].values()) >= 0.65,
        "uplift_qini_at_least_0.7_of_oracle": uplift["qini"] >= 0.7 * uplift["oracle_qini"],
        "churn_auc_within_0.03_of_oracle": churn["oracle_auc"] - churn["auc"] <= 0.03,
        "cause_accuracy_at_least_0.70": churn["cause_accuracy"] >= 0.70,
        "risk_beats_questionnaire": risk["accuracy"] > risk["questionnaire_accuracy"],
    }
    report(result, args.home, "models")


if __name__ == "__main__":
    main()
