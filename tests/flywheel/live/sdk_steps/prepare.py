"""Processing: read the raw CSV(s), split the rows (label first) into train and test."""

import argparse
import csv
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--raw", default="/opt/ml/processing/input/raw")
parser.add_argument("--out", default="/opt/ml/processing/output")
parser.add_argument("--own-download", default="")  # s3://bucket/key this step fetches itself with boto3
args = parser.parse_args()
raw = Path(args.raw)
if args.own_download:
    import boto3  # the step's own download, as step code often does (with the instance role's access)

    bucket, _, key = args.own_download.removeprefix("s3://").partition("/")
    raw.mkdir(parents=True, exist_ok=True)
    boto3.client("s3").download_file(bucket, key, str(raw / "own.csv"))
rows = [row for path in sorted(raw.glob("*.csv")) for row in list(csv.reader(path.open()))[1:]]
for split, part in (("train", rows[::2]), ("test", rows[1::2])):
    (Path(args.out) / split).mkdir(parents=True, exist_ok=True)
    with (Path(args.out) / split / f"{split}.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(part)
print("prepared", len(rows), "rows")
