"""The feedback loop where the truth is known: every arm through the real record store, MLflow registry, off-policy
gate and retrain; a replay of a CSV from the CLI; a sliding-window `scoreloop retrain` on what the loop logged; and
a failing monitoring report blocking promotion until `promote --force`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from scoreloop.core.offpolicy import Logged, compare
from scoreloop.core.pages import read_summaries
from scoreloop.core.policy import EXPLOIT, EXPLORE, SKIP
from scoreloop.core.settings import GateSettings, PolicySettings, SearchSpace, Settings, TrainSettings
from scoreloop.core.store import RecordStore
from scoreloop.core.synthetic import WorldConfig, generate_leads
from scoreloop.core.tracking import CHAMPION, configure, load_version
from scoreloop.loop.simulate import ARMS, SimulationConfig, lead_spec, run_simulation, synthetic_world, true_auc
from scoreloop.training.promote import run_table
from scoreloop.training.tags import HOLDOUT_ARTIFACT, LOGGED_ARTIFACT, PROPENSITY
from tests.support import cli

pytestmark = pytest.mark.slow

CONFIG = SimulationConfig(cycles=2, rows=2000, seeds=(0,), monitor=False)
JSON_FIELDS = ("arm", "seed", "cycle", "true_auc_champion", "true_auc_challenger", "promoted", "conversions",
               "gate_estimate", "gate_low", "gate_high")  # fmt: skip
EXPLORE_ENV = {
    "SCORELOOP_MODEL_NAME": "scoreloop-model-sim-s0-explore",
    "SCORELOOP_EXPERIMENT": "scoreloop-sim-s0-explore",
    "SCORELOOP_TRAIN__MAX_ITERATIONS": "150",
    "SCORELOOP_TRAIN__BASELINES": "false",
    "SCORELOOP_TRAIN__MIN_ROWS": "100",  # a 28-day window of the small simulation: ~400 labelled leads
    "SCORELOOP_TRAIN__MIN_POSITIVES": "10",
    "SCORELOOP_POLICY__EPSILON": "0.5",
}

EXPLORE_ENV_SETTINGS = {
    "model_name": EXPLORE_ENV["SCORELOOP_MODEL_NAME"],
    "experiment": EXPLORE_ENV["SCORELOOP_EXPERIMENT"],
}


def loop_settings(home: Path) -> Settings:
    search = SearchSpace(learning_rate=(0.1, 0.3), auto_class_weights=["None"])
    train = TrainSettings(trials=1, max_iterations=150, search=search)
    return Settings(home=home, train=train, policy=PolicySettings(capacity=0.2, epsilon=0.5))


@pytest.fixture(scope="module")
def heard() -> list[tuple[float, float, str]]:
    """What the simulation's progress callback was told."""
    return []


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, heard: list) -> tuple[Path, pd.DataFrame]:
    home = tmp_path_factory.mktemp("loop")
    records, _ = run_simulation(loop_settings(home), CONFIG, progress=lambda *call: heard.append(call))
    return home, pd.DataFrame([r.to_dict() for r in records])


def test_the_simulation_reports_its_pilot_every_cycle_and_each_retrains_steps(loop, heard: list) -> None:
    """One unit for the pilot and one per arm and cycle (1 + 4 x 2), never going back; each retrain's steps and
    training trial within its cycle's unit."""
    assert {total for _, total, _ in heard} == {9} and heard[-1][:2] == (9, 9)
    dones = [done for done, _, _ in heard]
    assert dones == sorted(dones)
    starts = {done: note for done, _, note in heard if note.endswith(("cycle 1 of 2", "cycle 2 of 2"))}
    assert starts == {1 + 2 * k + c: f"seed 0, {arm}: cycle {c + 1} of 2" for k, arm in enumerate(ARMS) for c in (0, 1)}
    retrain = [(done, note) for done, _, note in heard if note.startswith("seed 0, exploit: cycle 1 of 2, retrain: ")]
    steps = [note.removeprefix("seed 0, exploit: cycle 1 of 2, retrain: ") for _, note in retrain]
    assert steps[:3] == ["reading the scoring log", "drift report of the window against the previous one",
                         "training: trial 1 of 1, best valid AUC " + steps[2][-6:]]  # fmt: skip
    outcome = loop[1].set_index(["arm", "cycle"]).loc[("exploit", 1), "retrain"]
    assert steps[-2:] == ["publishing the report", outcome]
    assert all(3 <= done <= 4 for done, _ in retrain)  # exploit's first cycle is unit 4 of 9: after pilot and explore


def test_every_arm_runs_every_cycle_and_only_the_default_one_is_gated(loop) -> None:
    frame = loop[1].set_index(["arm", "cycle"])
    assert set(frame.index) == {(arm, cycle) for arm in ARMS for cycle in (1, 2)}
    assert not frame.loc["stale", "promoted"].any() and frame.loc["stale", "true_auc_challenger"].isna().all()
    assert frame.loc["exploit", "promoted"].all() and frame.loc["oracle", "promoted"].all()  # deploy every retrain
    assert frame.loc["explore", "gated"].all() and not frame.loc["exploit", "gated"].any()
    shared = frame.xs(1, level="cycle")["true_auc_champion"]
    assert shared.nunique() == 1  # every arm starts from the same pilot, judged on the same next month
    assert frame["worked"].between(350, 450).all()  # a fifth of a month of about 2,000 leads
    assert (frame.loc["explore", "explored"] == (frame.loc["explore", "worked"] / 2).round()).all()
    # Retrained on its own top picks from scratch, exploit-only ranked the population 0.10 to 0.19 worse than a
    # retrain on every outcome (seeds 0-4); warm-started from the champion with the pilot month beside it, it stays
    # close to the champion.
    exploit = frame.loc[("exploit", 1)]
    assert exploit["true_auc_challenger"] > exploit["true_auc_champion"] - 0.02


def test_the_gate_judged_the_default_arm_on_its_logged_decisions(loop) -> None:
    """Each explore-arm decision was taken on the logged decisions of the challenger's holdout span (worked and
    unworked records with their propensities); recomputing the comparison from that artifact gives the recorded
    figures, and the verdict follows from the lower end of the interval, the margin and the ECE tolerance."""
    home, frame = loop
    settings = loop_settings(home).model_copy(update=EXPLORE_ENV_SETTINGS)
    configure(settings)
    client, gate = MlflowClient(), GateSettings()
    explore = frame[frame["arm"] == "explore"]
    leads = pd.concat(synthetic_world(CONFIG, 0).months)
    for version in ("2", "3"):
        tags = client.get_model_version(settings.model_name, version).tags
        run_id = client.get_model_version(settings.model_name, version).run_id
        logged_rows = run_table(run_id, LOGGED_ARTIFACT)
        assert logged_rows["converted"].isna().any() and logged_rows[PROPENSITY].lt(1).any()  # unworked included
        champion = load_version(settings.model_name, tags["gate.champion_version"])
        challenger = load_version(settings.model_name, version)
        found = compare(
            Logged.of(logged_rows["converted"], logged_rows[PROPENSITY]),
            challenger.predict_proba(logged_rows),
            champion.predict_proba(logged_rows),
            gate.metric,
            settings.policy.capacity,
            level=gate.level,
            rounds=gate.rounds,
        )
        assert float(tags["gate.gain_low"]) == pytest.approx(found.gain[1])
        assert float(tags["gate.value_challenger"]) == pytest.approx(found.new["worklist_value"])
        assert int(tags["gate.records"]) == len(logged_rows) > int(tags["gate.labelled"])
        verdict = found.gain[1] > gate.margin and found.ece_gap[1] <= gate.ece_tolerance
        assert tags["gate.promoted"] == str(verdict)
        cycle = explore[explore["gate_low"].round(6) == round(found.gain[1], 6)]
        assert len(cycle) == 1 and bool(cycle["promoted"].iloc[0]) is verdict
        # the recorded span gain is the true gain on exactly the records the gate judged, every outcome known
        span = leads[leads["lead_id"].isin(logged_rows["lead_id"].astype(str))]
        assert len(span) == len(logged_rows)
        truth = true_auc(challenger.predict_proba(span), span) - true_auc(champion.predict_proba(span), span)
        assert cycle["span_gain"].iloc[0] == pytest.approx(truth)


def test_the_propensity_is_logged_with_every_score(loop) -> None:
    home = loop[0]
    log = RecordStore(f"sqlite:///{home / 'simulate-s0-explore.db'}").labelled(features=False)
    assert set(log["policy"]) == {EXPLOIT, EXPLORE, SKIP}
    assert (log.loc[log["policy"] == EXPLOIT, "propensity"] == 1).all()
    for _, month in log.groupby(log["scored_at"].dt.month):
        rest = month[month["policy"] != EXPLOIT]
        assert rest["propensity"].nunique() == 1
        assert rest["propensity"].iloc[0] == pytest.approx((rest["policy"] == EXPLORE).sum() / len(rest))
        assert month["propensity"].sum() == pytest.approx(month["worked"].sum())  # expected worked = worked
    assert (log["outcome"].notna() == log["worked"]).all()  # labels exist for worked leads only
    oracle = RecordStore(f"sqlite:///{home / 'simulate-s0-oracle.db'}").labelled(features=False)
    assert oracle["outcome"].notna().all() and (oracle["propensity"] == 1).all()  # every outcome, no policy chose


def test_retrains_add_the_pilot_month_from_the_lineage_and_gate_on_the_window_only(loop) -> None:
    """Every arm's retrain (default settings) added the fully labelled pilot month, read from the file the
    champion's run names, with weights below the window's; warm-started from the champion; left the window's labels
    unweighted (`retrain.ipw` off); and its holdout (the gate's span) holds none of the pilot's rows."""
    home = loop[0]
    retrains = [s for s in read_summaries(home / "reports") if s["kind"] == "retrain"]
    assert retrains and not any(s["ipw"] for s in retrains[: 3 * CONFIG.cycles])  # the arms' own, before any CLI's
    pilot_file = home / "simulate-s0-pilot.parquet"
    pilot = pd.read_parquet(pilot_file)
    configure(loop_settings(home).model_copy(update=EXPLORE_ENV_SETTINGS))
    client = MlflowClient()
    for version in ("2", "3"):
        run = client.get_run(client.get_model_version(EXPLORE_ENV["SCORELOOP_MODEL_NAME"], version).run_id)
        params = run.data.params
        assert Path(params["older_data"]).resolve() == pilot_file.resolve()
        assert int(params["older_rows"]) == len(pilot) and 0 < float(params["older_weight_mean"]) < 1
        assert params["warm_start"] == "True"
        assert pd.Timestamp(params["window.holdout_start"]) > pilot["created_at"].max()
        holdout = run_table(run.info.run_id, HOLDOUT_ARTIFACT)
        assert not holdout["lead_id"].astype(str).isin(pilot["lead_id"].astype(str)).any()


def test_the_report_judges_the_gate_against_the_truth(loop) -> None:
    home = loop[0]
    summary = [s for s in read_summaries(home / "reports") if s["kind"] == "simulate"][-1]
    assert {a["arm"] for a in summary["arms"]} == set(ARMS)
    gate = summary["gate"]
    explore = loop[1][loop[1]["arm"] == "explore"]
    assert gate["decisions"] == len(explore) and gate["promotions"] == explore["promoted"].sum()
    truth = explore["true_auc_challenger"] - explore["true_auc_champion"]
    assert gate["worse_promoted_share"] == pytest.approx(float((explore["promoted"] & (truth < -0.01)).mean()))


def test_sliding_window_retrain_from_the_cli(loop) -> None:
    """`scoreloop retrain --window 28d` with `retrain.ipw` on, a gate span of 30% of the window and a warm-start
    cap of one tree (the champion is too large to start from), on what the explore arm logged: challenger,
    off-policy gate, reason, and the comparison of the training window with the previous one, in a report and an
    MLflow run."""
    home = loop[0]
    env = {
        **EXPLORE_ENV,
        "SCORELOOP_STORE_URL": f"sqlite:///{home / 'simulate-s0-explore.db'}",
        "SCORELOOP_RETRAIN__IPW": "true",
        "SCORELOOP_RETRAIN__HOLDOUT_FRACTION": "0.3",
        "SCORELOOP_RETRAIN__WARM_MAX_TREES": "1",
    }
    run = cli(home, "retrain", "--window", "28d", "--trials", "1", env=env)
    summary = [s for s in read_summaries(home / "reports") if s["kind"] == "retrain"][-1]  # a promotion adds notes
    assert summary["ipw"] is True
    assert f"retrain: {summary['outcome']}" in run.stdout, run.stdout
    assert ("release notes:" in run.stdout) == (summary["outcome"] == "promoted")
    assert summary["outcome"] in ("promoted", "refused") and "worklist value" in summary["reason"]
    gate = summary["gate"]
    assert gate["estimator"].startswith("off-policy") and gate["records"] > gate["labelled"] > 0
    c = summary["comparison"]
    for window in ("current", "previous"):
        assert c[f"{window}_scored"] > 1000 and c[f"{window}_labelled"] == pytest.approx(
            0.2 * c[f"{window}_scored"], 0.05
        )
        assert 0 < c[f"{window}_positive_rate"] < 1 and c[f"{window}_explored_share"] == pytest.approx(0.5, abs=0.05)
    promoted = gate["gain_low"] > gate["margin"] and gate["ece_gap_low"] <= gate["ece_tolerance"]
    assert gate["promoted"] is promoted and summary["outcome"] == ("promoted" if promoted else "refused"), gate
    configure(loop_settings(home).model_copy(update=EXPLORE_ENV_SETTINGS))
    client = MlflowClient()
    run_id = client.get_model_version(EXPLORE_ENV["SCORELOOP_MODEL_NAME"], gate["challenger_version"]).run_id
    params = client.get_run(run_id).data.params
    assert params["holdout_fraction"] == "0.3" and params["warm_start"] == "False"
    retrain_params = client.get_run(summary["run_id"]).data.params
    assert retrain_params["warm_start"] == "False" and int(retrain_params["champion_trees"]) > 1
    assert len(run_table(run_id, HOLDOUT_ARTIFACT)) == pytest.approx(0.3 * c["current_labelled"], rel=0.05)
    champion = client.get_model_version_by_alias(EXPLORE_ENV["SCORELOOP_MODEL_NAME"], CHAMPION).version
    assert str(champion) == gate["challenger_version" if promoted else "champion_version"]


def test_a_failing_monitoring_report_blocks_promotion_until_forced(loop, tmp_path: Path) -> None:
    """Monitoring compares a month with one whose every feature moved: it fails. The gate's figures are opened
    (margin -1, ECE tolerance 1) so only the monitoring block stands between the challenger and the alias."""
    home = loop[0]
    env = {
        **EXPLORE_ENV,
        "SCORELOOP_STORE_URL": f"sqlite:///{home / 'simulate-s0-explore.db'}",
        "SCORELOOP_GATE__MARGIN": "-1",
        "SCORELOOP_GATE__ECE_TOLERANCE": "1",
    }
    leads = generate_leads(WorldConfig(rows=2000, seed=5)).drop(columns="p_true")
    spec = lead_spec().save(tmp_path / "spec.yaml")
    leads.iloc[:1000].to_csv(tmp_path / "reference.csv", index=False)
    moved = leads.iloc[1000:].copy()
    moved[lead_spec().numeric] = moved[lead_spec().numeric] * 5 + 10  # every numeric feature moved far
    moved.to_csv(tmp_path / "current.csv", index=False)
    cli(home, "train", "--spec", str(spec), "--data", str(tmp_path / "current.csv"), "--trials", "1", env=env)
    monitored = cli(home, "monitor", "--reference", str(tmp_path / "reference.csv"), "--current",
                    str(tmp_path / "current.csv"), "--spec", str(spec), env=env)  # fmt: skip
    assert "fail" in monitored.stdout, monitored.stdout
    configure(loop_settings(home).model_copy(update=EXPLORE_ENV_SETTINGS))
    client, name = MlflowClient(), EXPLORE_ENV["SCORELOOP_MODEL_NAME"]
    challenger = client.get_model_version_by_alias(name, "challenger").version
    assert "not promoted" in cli(home, "promote", env=env).stdout
    refused = client.get_model_version(name, challenger).tags
    assert refused["gate.promoted"] == "False" and "blocked by the failing monitoring report" in refused["gate.reason"]
    assert "promoted" in cli(home, "promote", "--force", env=env).stdout
    champion = client.get_model_version_by_alias(name, CHAMPION)
    assert champion.version == challenger and champion.tags["gate.forced"] == "True"
    assert "forced past the failing monitoring report" in champion.tags["gate.reason"]
    assert "fail: max feature drift share" in champion.tags["gate.monitoring"]


def test_a_replay_of_a_csv_runs_every_arm_and_writes_the_named_json_fields(tmp_path: Path) -> None:
    leads = generate_leads(WorldConfig(rows=1500, seed=3, months=3)).drop(columns="p_true")
    leads.drop(columns=["lead_id", "created_at"]).to_csv(tmp_path / "table.csv", index=False)  # no id, no time
    spec = lead_spec().model_copy(update={"id_column": None, "time_column": None}).save(tmp_path / "spec.yaml")
    out = tmp_path / "loop.json"
    env = {"SCORELOOP_TRAIN__MAX_ITERATIONS": "100", "SCORELOOP_TRAIN__BASELINES": "false"}
    run = cli(tmp_path, "simulate", "--data", str(tmp_path / "table.csv"), "--spec", str(spec), "--cycles", "1",
              "--seeds", "0-1", "--no-monitor", "--json", str(out), env=env)  # fmt: skip
    assert "gate decisions against the truth" in run.stdout, run.stdout
    records = json.loads(out.read_text())
    assert {(r["arm"], r["seed"], r["cycle"]) for r in records} == {(a, s, 1) for a in ARMS for s in (0, 1)}
    for record in records:
        assert list(record)[: len(JSON_FIELDS)] == list(JSON_FIELDS)
        assert isinstance(record["promoted"], bool) and 0 <= record["true_auc_champion"] <= 1
    assert np.isfinite([r["gate_low"] for r in records if r["arm"] == "explore"]).all()
