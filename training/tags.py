"""Names shared by what writes training runs and what reads them back (runs, promote), kept import-light."""

STUDY_TAG = "scoreloop.study"
ROLE_TAG = "scoreloop.role"
VERSION_TAG = "scoreloop.model_version"
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
BASELINE_PROBA = "_baseline_proba."  # holdout artifact columns: a baseline's probability for each holdout row
LOGGED_ARTIFACT = "gate/logged.parquet"  # a retrain's evaluation records: every record scored in the holdout span
PROPENSITY = "propensity"  # the column of LOGGED_ARTIFACT with each record's logged probability of being worked
