"""Names shared by what writes training runs and what reads them back (runs, promote), kept import-light."""

STUDY_TAG = "scoreloop.study"
ROLE_TAG = "scoreloop.role"
VERSION_TAG = "scoreloop.model_version"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
BASELINE_PROBA = "_baseline_proba."  # holdout artifact columns: a baseline's probability for each holdout row
