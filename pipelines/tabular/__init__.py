"""The ``tabular`` pipeline template: preprocess → train (XGBoost) → evaluate → gate → register."""
