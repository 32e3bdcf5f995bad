"""Monitoring on a real record store, MLflow store and Evidently reports: late labels, drift verdicts, the gate's
exit code, the index page, sanitised report names, and reports rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from scoreloop.core.metrics import psi
from scoreloop.core.pages import INDEX_HTML, read_summaries
from scoreloop.core.policy import work_plan
from scoreloop.core.settings import MonitorSettings, SearchSpace, Settings, TrainSettings
from scoreloop.core.store import Outcome, RecordStore
from scoreloop.core.synthetic import ID_COLUMN, WorldConfig, generate_leads
from scoreloop.core.tracking import configure, load_registered, load_version
from scoreloop.loop.simulate import lead_spec, log_outcomes, log_scored
from scoreloop.monitoring.monitor import MonitorReport, Window, monitor_period
from scoreloop.training.promote import promote
from scoreloop.training.train import train_rows
from tests.support import cli

pytestmark = pytest.mark.slow

JAN, FEB, MAR, APR = (datetime(2024, m, 1) for m in (1, 2, 3, 4))
MARCH = Window(MAR, APR)
PERIOD = APR - MAR


@dataclass
class World:
    store: RecordStore
    leads: pd.DataFrame
    plan: pd.DataFrame


def small_settings(home: Path, **update) -> Settings:
    # One quick, calibrated model: no class weights, a learning rate that converges within the trees allowed.
    search = SearchSpace(learning_rate=(0.1, 0.3), auto_class_weights=["None"])
    train = TrainSettings(trials=1, max_iterations=150, baselines=False, search=search)
    # ECE over ten equal-count bins of a few hundred labelled records has a noise floor near the default 0.1: a
    # stable world must pass on what it is tested for (drift, AUC), not on that noise.
    monitor = MonitorSettings(max_calibration_error=0.15)
    return Settings(home=home, train=train, monitor=monitor).model_copy(update=update)


def scored_world(settings: Settings, store_url: str, *, covariate_drift: float, seed: int) -> World:
    """Three months (Jan-Mar 2024) of leads scored by the champion and worked by the policy; no outcomes yet."""
    leads = generate_leads(WorldConfig(rows=4500, months=3, seed=seed, covariate_drift=covariate_drift))
    model = load_registered(settings)
    scored = model.score(leads)
    plan = work_plan(scored["probability"].to_numpy(), 0.2, 0.25, np.random.default_rng(seed)).set_axis(leads.index)
    store = RecordStore(store_url)
    log_scored(store, lead_spec(), leads, scored, plan, model)
    return World(store, leads, plan)


def in_march(leads: pd.DataFrame) -> pd.DataFrame:
    return leads[(leads["created_at"] >= MAR) & (leads["created_at"] < APR)]


@dataclass
class Reports:
    home: Path
    stable: World
    before_labels: MonitorReport
    after_labels: MonitorReport
    drifted: MonitorReport
    gate_run: subprocess.CompletedProcess
    progress: list[tuple[float, float, str]]  # what monitoring `before_labels` told its progress callback


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """A champion trained on an undrifted month; a stable world monitored before and after its late labels; a
    drifting world (the home's own store) monitored in-process and through the CLI with --gate."""
    home = tmp_path_factory.mktemp("monitoring")
    settings = small_settings(home)
    pilot = generate_leads(WorldConfig(rows=3000, months=1, seed=11)).drop(columns="p_true")
    train_rows(settings, lead_spec(), pilot, source="pilot", study_name="monitoring-test")
    promote(settings)

    stable = scored_world(settings, f"sqlite:///{home / 'stable.db'}", covariate_drift=0.0, seed=1)
    march = Window(MAR, APR)
    heard: list[tuple[float, float, str]] = []
    before = monitor_period(
        settings, PERIOD, end=APR, reference=Window(JAN, FEB), store=stable.store, progress=lambda *c: heard.append(c)
    )
    worked = in_march(stable.leads)[stable.plan.loc[in_march(stable.leads).index, "worked"]]
    # Labels arrive late and in two deliveries; the first record is corrected; an unknown id is ignored.
    first, rest = worked.iloc[:50], worked.iloc[50:]
    stable.store.add_outcomes([Outcome(str(first[ID_COLUMN].iloc[0]), 1 - int(first["converted"].iloc[0]))])
    log_outcomes(stable.store, lead_spec(), first, stable.plan["worked"])
    stable.store.add_outcomes([Outcome("never-scored", 1)])
    log_outcomes(stable.store, lead_spec(), rest, stable.plan["worked"])
    after = monitor_period(settings, PERIOD, end=march.end, reference=Window(JAN, FEB), store=stable.store)

    drifting = scored_world(settings, settings.record_store_url, covariate_drift=1.0, seed=2)
    log_outcomes(drifting.store, lead_spec(), drifting.leads, drifting.plan["worked"])
    drifted = monitor_period(settings, PERIOD, end=APR, reference=Window(JAN, FEB), store=drifting.store)
    gate_run = cli(
        home, "monitor", "--period", "31d", "--end", "2024-04-01", "--reference-start", "2024-01-01",
        "--reference-end", "2024-02-01", "--gate", "--name", "../../escaped nightly", check=False,
        env={"SCORELOOP_MONITOR__MAX_PSI": "5"},
    )  # fmt: skip
    return Reports(home, stable, before, after, drifted, gate_run, heard)


def test_period_monitoring_reports_its_four_steps(reports: Reports) -> None:
    assert [(done, total) for done, total, _ in reports.progress] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert "drift report" in reports.progress[1][2] and "publishing" in reports.progress[3][2]


def test_late_labels_join_the_scoring_log(reports: Reports) -> None:
    store, leads, plan = reports.stable.store, reports.stable.leads, reports.stable.plan
    joined = store.labelled(MAR, APR, features=False).set_index("record_id")
    march = in_march(leads).set_index(ID_COLUMN)
    worked = plan.loc[in_march(leads).index, "worked"].to_numpy()
    assert set(joined.index) == set(march.index)  # every scored record, labelled or not, and nothing else
    labelled = joined["outcome"].notna()
    assert set(joined.index[labelled]) == set(march.index[worked])  # outcomes exist for worked records only
    assert (joined.loc[labelled, "outcome"] == march.loc[joined.index[labelled], "converted"]).all()  # latest wins
    assert "never-scored" not in joined.index

    before, after = reports.before_labels.summary["figures"], reports.after_labels.summary["figures"]
    assert before["labelled"] == 0
    assert after["labelled"] == worked.sum()
    assert after["label_coverage"] == pytest.approx(worked.mean())
    auc_check = {c.name: c for c in reports.before_labels.checks}["min ROC AUC on labelled records"]
    assert auc_check.passed is None and "0 labelled records" in auc_check.detail
    tiers = pd.DataFrame(after["tiers"]).set_index("tier")
    assert list(tiers.index) == ["A", "B", "C", "D"]
    assert tiers["scored"].sum() == after["rows_current"] and tiers["labelled"].sum() == after["labelled"]
    assert tiers.loc["A", "coverage"] > tiers.loc["D", "coverage"]  # the policy works the top
    assert 0.6 < after["roc_auc"] < 1 and after["calibration_error"] < 0.15  # see small_settings
    assert reports.after_labels.quality is not None and reports.after_labels.quality.metrics["roc_auc"] > 0.6


def test_drift_is_detected_when_the_world_drifts_and_not_otherwise(reports: Reports) -> None:
    stable, drifted = reports.after_labels, reports.drifted
    assert stable.summary["figures"]["drifted"] == []
    assert stable.status == "pass", [c.describe() for c in stable.checks if c.passed is False]
    figures = drifted.summary["figures"]
    assert len(figures["drifted"]) >= 2
    assert drifted.status == "fail"
    failed = {c.name: c for c in drifted.checks if c.passed is False}
    assert "max feature drift share" in failed and failed["max feature drift share"].value > 0.3
    assert figures["psi"] > stable.summary["figures"]["psi"]


def test_score_drift_across_a_promotion_is_the_model_in_services_not_the_swaps(tmp_path: Path) -> None:
    """February scored by version 1, March by version 2, a model whose probabilities sit far higher (trained with
    two negatives in three left out): between the two versions' logged scores the PSI is far above the tolerance,
    yet the world did not move, so monitoring scores February again with version 2 and passes."""
    settings = small_settings(tmp_path)
    pilot = generate_leads(WorldConfig(rows=3000, months=1, seed=11)).drop(columns="p_true")
    first = train_rows(settings, lead_spec(), pilot, source="pilot", study_name="rescored-1")
    few_negatives = pilot[(pilot["converted"] == 1) | (np.arange(len(pilot)) % 3 == 0)]
    second = train_rows(settings, lead_spec(), few_negatives, source="few negatives", study_name="rescored-2")
    leads = generate_leads(WorldConfig(rows=4500, months=3, seed=3, covariate_drift=0.0))
    store = RecordStore(settings.record_store_url)
    for version, start, end in ((first.version, FEB, MAR), (second.version, MAR, APR)):
        month = leads[(leads["created_at"] >= start) & (leads["created_at"] < end)]
        model = load_version(settings.model_name, version)
        scored = model.score(month)
        plan = work_plan(scored["probability"].to_numpy(), 0.2, 0.25, np.random.default_rng(0)).set_axis(month.index)
        log_scored(store, lead_spec(), month, scored, plan, model)
    logged = psi(
        store.scores(FEB, MAR, features=False)["probability"], store.scores(MAR, APR, features=False)["probability"]
    )
    assert logged > 0.2  # what the check saw before: the swap, not the data

    report = monitor_period(settings, PERIOD, end=APR, reference=Window(FEB, MAR), store=store)
    figures = report.summary["figures"]
    assert figures["psi"] < 0.05, figures["psi"]
    assert f"version(s) {first.version} scored scored again by version {second.version}" in figures["psi_basis"]
    assert {c.name: c.passed for c in report.checks}["max score PSI"] is True
    assert report.drift.prediction is not None and report.drift.prediction.score < 0.05  # Evidently's, same samples


def test_thresholds_from_config_fail_the_cli_with_a_non_zero_exit(reports: Reports) -> None:
    run = reports.gate_run
    assert run.returncode == 1, run.stdout + run.stderr
    assert "monitoring gate failed" in run.stdout and "max feature drift share" in run.stdout
    summary = read_summaries(reports.home / "reports")[-1]
    psi_check = next(c for c in summary["checks"] if c["name"] == "max score PSI")
    assert psi_check["tolerance"] == 5 and psi_check["passed"] is True  # SCORELOOP_MONITOR__MAX_PSI was read


def test_report_names_cannot_leave_the_reports_folder(reports: Reports) -> None:
    folders = [p for p in (reports.home / "reports").iterdir() if p.is_dir()]
    named = [p for p in folders if "nightly" in p.name]
    assert len(named) == 1 and named[0].name.endswith("-monitor-escaped-nightly")
    assert not any("nightly" in p.name for p in [*reports.home.iterdir(), *reports.home.parent.iterdir()])


def test_monitoring_runs_are_logged_with_the_model_version_and_reports(reports: Reports) -> None:
    configure(small_settings(reports.home))
    client = MlflowClient()
    experiment = client.get_experiment_by_name("scoreloop-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4
    assert {r.data.tags["scoreloop.model_version"] for r in runs} == {"1"}
    assert sorted(r.data.tags["scoreloop.status"] for r in runs) == ["fail", "fail", "pass", "pass"]
    after = next(r for r in runs if r.info.run_name == reports.after_labels.out_dir.name)
    assert after.data.metrics["labelled"] == reports.after_labels.summary["figures"]["labelled"]
    names = {f.path for f in client.list_artifacts(after.info.run_id, "monitor")}
    assert {f"monitor/{n}" for n in ("drift.html", "drift.json", "quality.html", "summary.html")} <= names


def test_the_index_lists_every_report(reports: Reports) -> None:
    reports_dir = reports.home / "reports"
    folders = sorted(p.parent.name for p in reports_dir.glob("*/summary.json"))
    assert len(folders) == 4  # two stable-world reports, the drifted one, the CLI's
    page = (reports_dir / INDEX_HTML).read_text()
    linked = re.findall(r'href="([^"/]+)/summary\.html"', page)
    assert sorted(linked) == folders
    assert f"{len(folders)} reports, " in page and "data:image/png;base64," in page  # the trend plot
    for folder in folders:
        summary = json.loads((reports_dir / folder / "summary.json").read_text())
        for path in summary["files"].values():
            assert (reports_dir / folder / path).is_file()


def console_errors(page: Path) -> tuple[list[str], str]:
    """Load `page` from disk in headless Chromium: the console errors it logged, and the DOM after scripts ran."""
    run = subprocess.run(
        ["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return [line for line in lines if "error" in line.lower() or "uncaught" in line.lower()], run.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (CI installs Debian's chromium)")
def test_reports_render_in_headless_chromium_without_script_errors(reports: Reports, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    assert console_errors(broken)[0], "the console check must catch a script error"
    out_dir = reports.after_labels.out_dir
    doms = {}
    for page in (
        out_dir / "drift.html",
        out_dir / "quality.html",
        out_dir / "summary.html",
        out_dir.parent / INDEX_HTML,
    ):
        errors, doms[page.name] = console_errors(page)
        assert errors == [], f"{page.name}: {errors}"
        assert "</body>" in doms[page.name]
    drawn = 'class="main-svg"'  # an SVG element Plotly creates when Evidently's scripts ran
    assert drawn in doms["drift.html"] and drawn not in (out_dir / "drift.html").read_text()
