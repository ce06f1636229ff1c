"""Evaluation: the model's accuracy on the test split, as a property file (evaluation.json)."""

import argparse
import csv
import json
import tarfile
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="/opt/ml/processing/model")
parser.add_argument("--test", default="/opt/ml/processing/test")
parser.add_argument("--out", default="/opt/ml/processing/evaluation")
args = parser.parse_args()
with tarfile.open(Path(args.model) / "model.tar.gz") as tar:
    tar.extractall(Path(args.model) / "unpacked")
mean = json.loads((Path(args.model) / "unpacked" / "model.json").read_text())["mean"]
test = [float(row[0]) for path in Path(args.test).glob("*.csv") for row in csv.reader(path.open())]
accuracy = sum((mean >= 0.5) == (label >= 0.5) for label in test) / len(test)
Path(args.out).mkdir(parents=True, exist_ok=True)
(Path(args.out) / "evaluation.json").write_text(json.dumps({"metrics": {"accuracy": {"value": accuracy}}}))
print("accuracy", accuracy)
