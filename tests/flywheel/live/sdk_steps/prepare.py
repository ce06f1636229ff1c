"""Processing: read the raw CSV(s) (header ``label,x``), split the rows into train and test (label first, no
header: the built-in XGBoost CSV format) and a batch of the test features (no label) to score.

The script uses SageMaker's literal container paths and downloads one extra input with its own boto3 client
(the instance role's access), as step code often does.
"""

import argparse
import csv
from pathlib import Path

import boto3

parser = argparse.ArgumentParser()
parser.add_argument("--own-download", required=True)  # s3://bucket/key this step fetches itself
args = parser.parse_args()
raw = Path("/opt/ml/processing/input/raw")
bucket, _, key = args.own_download.removeprefix("s3://").partition("/")
boto3.client("s3").download_file(bucket, key, str(raw / "own.csv"))
rows = [row for path in sorted(raw.glob("*.csv")) for row in list(csv.reader(path.open()))[1:]]
parts = {"train": rows[::2], "test": rows[1::2], "batch": [row[1:] for row in rows[1::2]]}
for split, part in parts.items():
    folder = Path("/opt/ml/processing/output") / split
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{split}.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(part)
print("prepared", len(rows), "rows")
