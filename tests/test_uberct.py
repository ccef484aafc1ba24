"""uberct: cleaning of each dirt kind, the shapefile from a zip and from a folder, the
panel against a hand-built case, and the CLI end to end on --scale small data."""
from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely import LineString

from common import io
from competitions import REGISTRY
from competitions.uberct import data as uber_data
from competitions.uberct import features as uber_features
from competitions.uberct import level as uber_level
from competitions.uberct import model as uber_model
from competitions.uberct import poisson, shares
from competitions.uberct import synth as uber_synth

@pytest.fixture(scope="module")
def small(competition_data) -> Path:
    return competition_data("uberct")


def hand_segments() -> gpd.GeoDataFrame:
    """Three 500 m segments: A and B 1 km apart, C 10 km away."""
    lines = [LineString([(18.600, -33.930), (18.605, -33.930)]),
             LineString([(18.611, -33.930), (18.616, -33.930)]),
             LineString([(18.700, -33.930), (18.705, -33.930)])]
    frame = gpd.GeoDataFrame({"ROADNO": ["N1", "N1", "M5"], "LANES": [3, 3, 2], uber_data.SEGMENT_ID: ["SAAAAAA", "SBBBBBB", "SCCCCCC"]},
                             geometry=lines, crs=uber_data.GEOGRAPHIC_CRS)
    return frame.to_crs(uber_data.METRIC_CRS)


# --- cleaning ---------------------------------------------------------------------------

def test_cleaning_counts_and_repairs_every_dirt_kind(tmp_path):
    header = ",".join(uber_data.EVENT_COLUMNS)
    lines = [
        "1,01/01/16 00:53,Cameras,Stationary Vehicle,Breakdown,Closed,18.6010,-33.9300,SAAAAAA",
        "2,01/01/16 01:10,,Accident,Minor,Closed,18.6120,-33.9300,SBBBBBB",            # no agency
        "3,02/01/16 10:00,Cameras,Stationary Vehicle,Breakdown, Tyre,Closed,18.6025,-33.9300",  # shifted, id lost
        "4,02/01/16 11:00,Cameras,Stationary Vehicle,Breakdown, Tyre,Closed,18.7025,-33.9300,SCCCCCC",  # shifted, 10 fields
        "5,03/01/16 12:00,Other,Crash,Rollover,Closed,18.6030,-33.9301,SZZZZZZ",         # unknown id, on segment A
        "6,03/01/16 13:00,Other,Crash,Rollover,Closed,18.9000,-34.1000,SYYYYYY",         # unknown id, off the map
        "7,2016-13-45 14:00,Other,Crash,Rollover,Closed,18.6030,-33.9300,SAAAAAA",       # not a day-first date
        "1,04/01/16 15:00,Other,Crash,Rollover,Closed,18.6030,-33.9300,SAAAAAA",         # EventId 1 again
    ]
    path = tmp_path / uber_data.TRAIN_FILE
    path.write_text("\n".join([header, *lines]) + "\n")
    events, dirt = uber_data.clean_events(uber_data.read_events(io.Source(path)), hand_segments())

    assert dirt["rows"] == 8
    assert dirt["missing_agency"] == 1
    assert dirt["shifted_columns"] == 2 and dirt["shifted_repaired"] == 1
    assert dirt["unknown_segment"] == 2 and dirt["unknown_segment_snapped"] == 1
    assert dirt["excluded_no_segment"] == 1 and dirt["excluded_bad_date"] == 1 and dirt["excluded_duplicate_event"] == 1
    assert dirt["kept"] == 5 == len(events)
    assert dirt["kept"] + sum(v for k, v in dirt.items() if k.startswith("excluded_")) == dirt["rows"]
    by_id = events.set_index(uber_data.EVENT_ID)
    assert by_id.loc["2", "agency"] == uber_data.UNKNOWN_AGENCY
    assert by_id.loc["3", uber_data.SEGMENT_ID] == "SAAAAAA"       # placed by its coordinates
    assert by_id.loc["3", "longitude"] == pytest.approx(18.6025)
    assert by_id.loc["4", uber_data.SEGMENT_ID] == "SCCCCCC"       # its id was in the tenth field
    assert by_id.loc["5", uber_data.SEGMENT_ID] == "SAAAAAA"       # snapped to the segment it lies on
    assert by_id.loc["1", "time"] == np.datetime64("2016-01-01T00:53")
    assert set(by_id.index) == {"1", "2", "3", "4", "5"}


def test_synthetic_train_csv_carries_the_real_dirt(small):
    text = (small / uber_data.TRAIN_FILE).read_text().splitlines()
    assert text[0] == ",".join(uber_data.EVENT_COLUMNS)
    assert re.fullmatch(r"\d{2}/\d{2}/\d{2} \d{2}:\d{2}", text[1].split(",")[1])
    data = REGISTRY.competition("uberct").load(small)
    assert data.dirt["shifted_columns"] == 2 and data.dirt["missing_agency"] == 40
    assert data.dirt["excluded_no_segment"] > 0  # the ramp id the shapefile lacks
    assert len(data.test_ids) == 16 * (14 * 24 - 1)


# --- the shapefile ----------------------------------------------------------------------

def test_shapefile_reads_from_the_zip_and_from_a_folder(small, tmp_path):
    zipped = uber_data.read_segments(small)
    with zipfile.ZipFile(small / uber_data.SEGMENTS_ZIP) as archive:
        members = sorted(archive.namelist())
    assert members == sorted(f"road_segments.{suffix}" for suffix in ("cpg", "dbf", "prj", "shp", "shx"))
    folder = tmp_path / "unzipped"
    io.safe_extract(small / uber_data.SEGMENTS_ZIP, folder / "road_segments")
    loose = uber_data.read_segments(folder)
    assert list(loose[uber_data.SEGMENT_ID]) == list(zipped[uber_data.SEGMENT_ID])
    for column in ("ROADNO", "CLASS", "REGION", "LANES", "SURFTYPE", "PAVETYPE", "CONDITION", "WIDTH", "LENGTH"):
        assert column in loose.columns
    assert str(loose.crs) == uber_data.METRIC_CRS
    assert loose.geometry.length.between(300, 700).all()  # ~500 m segments, in metres


def test_missing_shapefile_is_one_clear_error(tmp_path):
    with pytest.raises(io.InputError, match="no road segment shapefile"):
        uber_data.read_segments(tmp_path)


# --- the panel --------------------------------------------------------------------------

def hand_data() -> uber_data.UberData:
    times = ["2020-01-01 08:10", "2020-01-01 08:40", "2020-01-02 17:05", "2020-01-04 07:30", "2020-01-04 23:59"]
    events = pd.DataFrame({uber_data.EVENT_ID: ["1", "2", "3", "4", "5"],
                           "time": pd.to_datetime(times).to_numpy().astype("datetime64[s]"),
                           uber_data.SEGMENT_ID: ["SAAAAAA", "SAAAAAA", "SBBBBBB", "SAAAAAA", "SCCCCCC"]})
    hours = pd.date_range("2020-01-05 01:00", "2020-01-05 23:00", freq="h")
    segments = np.array(["SAAAAAA", "SBBBBBB", "SCCCCCC"], dtype=object)
    test_times = np.repeat(hours.to_numpy().astype("datetime64[s]"), 3)
    test_segments = np.tile(segments, len(hours))
    ids = np.array([f"{t:%Y-%m-%d %H:%M:%S} x {s}" for t, s in zip(pd.DatetimeIndex(test_times), test_segments)], dtype=object)
    return uber_data.UberData(events, hand_segments(), ids, test_times, test_segments, dirt={})


def test_panel_matches_a_hand_built_case():
    context = uber_features.Context(hand_data())
    assert context.block_days == 1 and context.test_day == 4
    assert context.blocks() == [(3, 4), (2, 3), (1, 2)]

    rows = context.block_rows(hand_data().events, (3, 4), 1.0, np.random.default_rng(0))
    assert len(rows) == 3 * 24
    positives = {(context.ids[s], str(h)) for s, h, y in zip(rows.segment, rows.hour, rows.label) if y}
    assert positives == {("SAAAAAA", "2020-01-04T07"), ("SCCCCCC", "2020-01-04T23")}

    frame = context.features(rows).assign(segment=context.ids[rows.segment], hour_stamp=rows.hour)
    a = frame[frame["segment"] == "SAAAAAA"].iloc[0]
    b = frame[frame["segment"] == "SBBBBBB"].iloc[0]
    c = frame[frame["segment"] == "SCCCCCC"].iloc[0]
    # As of 2020-01-04: three days of history, the 01-04 incidents not yet seen.
    assert a["rate_all"] == pytest.approx(2 / 72) and b["rate_all"] == pytest.approx(1 / 72) and c["rate_all"] == 0
    assert a["history_days"] == 3
    assert a["neighbour_rate_all"] == pytest.approx(1 / 72)  # only B is within 3 km of A
    assert c["neighbour_rate_all"] == 0
    # The log of the all-history rate shrunk towards the city's (3 incidents in 3 x 72 hours), so C's is finite.
    city, prior = 3 / (3 * 72), uber_features.PRIOR_INCIDENTS
    for row, count in ((a, 2), (b, 1), (c, 0)):
        assert row[uber_features.SHRUNK] == pytest.approx(np.log((count + prior) / (72 + prior / city)), rel=1e-5)
    # The offset copies the shrunk rate by default; the level filter's forecast is finite and
    # ranks the segments as their counts do, and is the offset when asked for.
    assert np.array_equal(frame[uber_features.OFFSET], frame[uber_features.SHRUNK])
    assert a[uber_features.LEVEL] > b[uber_features.LEVEL] > c[uber_features.LEVEL] > np.log(city) - 3
    level = uber_features.Context(hand_data(), offset="level").features(rows)
    assert np.array_equal(level[uber_features.OFFSET], level[uber_features.LEVEL])
    morning = frame[(frame["segment"] == "SAAAAAA") & (frame["hour"] == 8)].iloc[0]
    assert morning["rate_part_of_day"] == pytest.approx(2 / (3 * 4))  # two 08:xx incidents, 4 morning hours a day
    assert morning["weekday"] == 5 and morning["resting"] == 1  # 2020-01-04 was a Saturday

    sampled = context.block_rows(hand_data().events, (1, 2), 0.2, np.random.default_rng(0))
    assert sampled.label.sum() == 1 and len(sampled) < 3 * 24  # the positive is always kept
    assert str(sampled.hour[sampled.label == 1][0]) == "2020-01-02T17"

    test = context.test_rows(hand_data())
    assert (test.as_of == 4).all() and len(test) == 3 * 23


def test_the_model_starts_from_the_segment_rate_and_stays_calibrated():
    """Rows of two segments, one ten times riskier, with their log rate as the offset and
    negatives sampled at a quarter: the probabilities must come back at each segment's rate."""
    rng = np.random.default_rng(0)
    rate = rng.choice([0.004, 0.04], 100_000)
    labels = (rng.random(len(rate)) < rate).astype(np.int8)
    frame = pd.DataFrame({uber_features.OFFSET: np.log(rate).astype(np.float32), "noise": rng.normal(size=len(rate))})
    sampled = (labels == 1) | (rng.random(len(rate)) < 0.25)
    params = {**uber_model.parameters(True, 0, 1), "iterations": 20, "depth": 2}
    booster = uber_model.train(frame[sampled], labels[sampled], 0.25, [], params)
    p = uber_model.probabilities(booster, frame)
    for level in (0.004, 0.04):
        chosen = rate == level
        assert p[chosen].mean() == pytest.approx(labels[chosen].mean(), rel=0.2)
    # A bag: another seed on the same rows; the bag's log-odds are the mean of its boosters'.
    other = uber_model.train(frame[sampled], labels[sampled], 0.25, [], {**params, "random_seed": 1})
    bagged = uber_model.probabilities([booster, other], frame)
    logit = [np.log(q / (1 - q)) for q in (p, uber_model.probabilities(other, frame), bagged)]
    assert np.allclose(logit[2], (logit[0] + logit[1]) / 2, atol=1e-6) and not np.allclose(logit[0], logit[1])


def test_segment_shares_come_from_the_level_and_every_hour_keeps_its_total():
    """Rates that are a segment's level x an hour's profile, predicted with a wrong level
    per segment: fitted to the true levels with weight 1 they come back exact up to one
    factor; with weight 0.5 each segment's share is the geometric mean of the two; every
    hour keeps the total it was given."""
    rng = np.random.default_rng(0)
    hours = np.arange(np.datetime64("2019-01-01T00"), np.datetime64("2019-03-01T00"))
    segment, hour = np.repeat(np.arange(5), len(hours)), np.tile(hours, 5)
    level = np.exp(rng.normal(-5, 1, 5))[segment]
    truth = level * np.exp(rng.normal(0, 0.5, len(hours)))[np.tile(np.arange(len(hours)), 5)]
    predicted = truth * np.exp(rng.normal(0, 0.5, 5))[segment]
    fitted = shares.proportional_fit(predicted, level, segment, hour)
    assert np.allclose(fitted / truth, (fitted / truth)[0], rtol=1e-6)
    assert not np.allclose(predicted / truth, (predicted / truth)[0], rtol=1e-2)  # the prediction's shares were wrong
    half = shares.proportional_fit(predicted, level, segment, hour, weight=0.5)
    share = [np.bincount(segment, r) / r.sum() for r in (half, truth, predicted)]
    assert np.allclose(share[0], np.sqrt(share[1] * share[2]) / np.sqrt(share[1] * share[2]).sum(), rtol=1e-6)
    by_hour = [np.bincount(np.tile(np.arange(len(hours)), 5), r) for r in (fitted, half, predicted)]
    assert np.allclose(by_hour[0], by_hour[2], rtol=1e-9) and np.allclose(by_hour[1], by_hour[2], rtol=1e-9)


def test_the_poisson_glm_recovers_a_planted_product_of_rates_from_a_sampled_panel():
    """Rates that are the level offset x an hour profile by road class and kind of day x
    congestion^1.2 x road traffic^1.5 x wet hours' 1.9, negatives sampled at a tenth: the
    GLM must find the exponents, and its rates must stay calibrated on the full panel
    and come close to the true rates' log likelihood. The blend with the trees averages
    the two log rates."""
    rng = np.random.default_rng(0)
    n = 120_000
    hour, resting, road_class = rng.integers(0, 24, n), rng.integers(0, 2, n), rng.integers(0, 3, n)
    profile = np.exp(np.sin(hour / 24 * 2 * np.pi) * (1 + 0.3 * road_class) * (1 - 0.5 * resting))
    congestion, traffic = np.exp(rng.normal(0, 0.3, n)), np.exp(rng.normal(0, 0.2, n))
    traffic[road_class == 2] = np.nan  # no counts on this road class
    rain = np.where(rng.random(n) < 0.1, rng.gamma(1.2, 1.5, n), 0.0)
    level = np.log(rng.uniform(0.002, 0.02, n))
    rate = np.exp(level) * profile * congestion ** 1.2 * np.nan_to_num(traffic, nan=1.0) ** 1.5 * np.where(rain > 0, 1.9, 1.0)
    labels = (rng.random(n) < -np.expm1(-rate)).astype(np.int8)
    frame = pd.DataFrame({"hour": hour, "resting": resting, "attr_CLASS": road_class, "zone_congestion": congestion,
                          "traffic_day_ratio": traffic, "weather_precipitation": rain, "day_of_year": rng.integers(1, 366, n),
                          "lead_days": rng.integers(0, 90, n), uber_features.LEVEL: level})
    kept = (labels == 1) | (rng.random(n) < 0.1)
    glm = poisson.fit(frame[kept].reset_index(drop=True), labels[kept], poisson.row_weights(labels[kept], 0.1))
    congestion_term, traffic_term = glm.coefficients[-6], glm.coefficients[-5]
    assert congestion_term == pytest.approx(1.2, abs=0.15) and traffic_term == pytest.approx(1.5, abs=0.25)
    fitted = np.exp(glm.log_rate(frame))
    assert fitted.sum() == pytest.approx(labels.sum(), rel=0.03)
    wet = rain > 0
    assert fitted[wet].sum() / rate[wet].sum() == pytest.approx(1, abs=0.05)

    def log_likelihood(r):
        return np.sum(np.where(labels == 1, np.log(-np.expm1(-r)), -r))
    gain, lost = log_likelihood(rate) - log_likelihood(np.exp(level)), log_likelihood(rate) - log_likelihood(fitted)
    assert lost < 0.15 * gain  # the product's structure is found, up to the noise of ~190 terms
    p = uber_model.blended(np.full(n, 0.01), np.log(fitted), 0.7)
    assert np.allclose(-np.log1p(-p), np.exp(0.3 * np.log(-np.log1p(-0.01)) + 0.7 * np.log(fitted)), rtol=1e-9)


def test_the_level_filter_tracks_a_planted_level_shift():
    """Monthly counts of 150 segments over three years, every risk a draw around the city's,
    a third of them doubling for good a year before the end: forecast for the next month,
    the filter must come much closer to the true level than the all-history rate on the
    shifted segments, and closer over all of them (the steady ones pay a little for it)."""
    rng = np.random.default_rng(0)
    segments, months = 150, 36
    risk = rng.normal(-0.1, 0.4, segments)
    shifted = np.arange(segments) % 3 == 0
    level = np.repeat(risk[:, None], months + 1, axis=1)
    level[shifted, 24:] += np.log(2)
    exposure = np.full((segments, months), 4.0)  # a segment of the city's risk expects 4 incidents a month
    counts = rng.poisson(np.exp(level[:, :months]) * exposure).astype(float)
    drift = uber_level.drift_by_evidence(counts, exposure)
    attributes, distance = np.ones((segments, 1)), np.full((segments, segments), 100.0)  # nothing known of place
    ahead, _ = uber_level.forecast(counts, exposure, attributes, distance, *drift, horizons=2)
    truth = level[:, months]
    static = np.log((counts.sum(axis=1) + 0.5) / exposure.sum(axis=1))
    filter_error, static_error = np.abs(ahead[:, 1] - truth), np.abs(static - truth)
    assert filter_error[shifted].mean() < 0.6 * static_error[shifted].mean()
    assert filter_error.mean() < 0.8 * static_error.mean()


# --- end to end -------------------------------------------------------------------------

def test_synth_is_deterministic(small, tmp_path):
    again = tmp_path / "again"
    REGISTRY.competition("uberct").synth(again, seed=0, scale="small")
    for path in sorted(p for p in small.rglob("*") if p.is_file()):
        assert (again / path.relative_to(small)).read_bytes() == path.read_bytes(), path.name


def test_synth_keeps_the_factors_that_recompose_its_rates(small):
    """The factors the generator keeps give its rates bit for bit; each of them counts;
    multiplied in logs from the fields alone they give the rate the module docstring
    describes; and the answers written for the same seed are 1 - exp(-rate)."""
    generator = uber_synth.Generator(uber_synth.SCALES["small"], seed=0)
    _, rates, _ = generator.simulate()
    f = generator.factors
    assert np.array_equal(f.rates(), rates)

    days, hod = f.day_of_hour, f.hour_of_day
    log_rate = (f.log_risk[:, None] + f.drift[:, f.month_of_hour] + f.peakiness[:, None] * np.log(f.day_profile)[None, :]
                + np.log(f.season_weather * f.city_day[days])[None, :] + 1.5 * np.log(f.road_day[f.road_of_segment][:, days])
                + 1.2 * np.log(f.congestion[f.zone_of_segment][:, hod]) + np.log(f.roadworks[:, days]) + np.log(f.normaliser))
    np.testing.assert_allclose(np.log(rates), log_rate, rtol=0, atol=1e-6)
    assert rates[:, generator.train_mask].sum(dtype=np.float64) == pytest.approx(generator.scale.events, rel=1e-6)
    assert f.roadworks.max() >= 3.0 and len(f.roadwork_episodes) == generator.scale.roadworks
    segment, start, stop = f.roadwork_episodes[0]
    assert (f.roadworks[segment, start:stop] >= 3.0).all() and (f.roadworks[segment, stop:] == 1.0).all()
    for name in ["log_risk", "drift", "peakiness"]:
        assert not np.allclose(replace(f, **{name: np.zeros_like(getattr(f, name))}).rates(), rates), name
    for name in ["day_profile", "season_weather", "city_day", "road_day", "congestion", "roadworks"]:
        assert not np.allclose(replace(f, **{name: np.ones_like(getattr(f, name))}).rates(), rates), name

    test, ids = generator.test_cells()
    written = pd.read_csv(small / "answers" / "probabilities.csv")
    assert (written[uber_data.ID] == ids).all()
    np.testing.assert_allclose(written["probability"], 1 - np.exp(-rates[:generator.known, test].T.ravel().astype(np.float64)), rtol=1e-5)


@pytest.mark.slow
def test_fast_run_flags_rows_and_beats_flagging_everything(compete, fast_run):
    run = fast_run("uberct")   # run, validate and same bytes are the contract suite's (tests/test_contract.py)
    submission = pd.read_csv(run.submission, dtype=str)
    sample = pd.read_csv(run.data / uber_data.SAMPLE_FILE, dtype=str)
    assert list(submission.columns) == [uber_data.ID, uber_data.TARGET] and len(submission) == len(sample)
    assert set(submission[uber_data.TARGET]) <= {"0", "1"} and (submission[uber_data.TARGET] == "1").any()

    scored = compete("score", "uberct", run.submission, "--answers", run.data / "answers")
    scores = {k: float(v) for k, v in re.findall(r"(\w+): ([0-9.]+)", scored.stdout)}
    truth = pd.read_csv(run.data / "answers" / "solution.csv")[uber_data.TARGET]
    flag_everything = 2 * truth.sum() / (len(truth) + truth.sum())
    assert scores["f1"] > 2 * flag_everything
    assert 0 < scores["oracle_f1"] <= 1 and scores["ratio_to_oracle"] == pytest.approx(scores["f1"] / scores["oracle_f1"], rel=1e-4)
    assert (run.run_dir / "f1_threshold.png").is_file()


def test_runs_without_the_extra_sources(small, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in (uber_data.TRAIN_FILE, uber_data.SEGMENTS_ZIP, uber_data.SAMPLE_FILE):
        shutil.copy(small / name, bare / name)
    competition = REGISTRY.competition("uberct")
    data = competition.load(bare)
    assert data.weather is None and data.traffic is None and data.congestion is None
    model, report = competition.fit(data, competition.options(seed=0, fast=True, quiet=True), tmp_path)
    assert not any(c.startswith(("weather_", "traffic_", "zone_")) for c in model.columns)
    frame = competition.predict(model, data)
    assert len(frame) == len(data.test_ids) and set(frame[uber_data.TARGET].unique()) <= {0, 1}


def test_a_malformed_sample_id_is_one_line_naming_the_row(compete, small, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small, broken, ignore=shutil.ignore_patterns("answers"))
    lines = (broken / uber_data.SAMPLE_FILE).read_text().splitlines()
    lines[3] = "2019-01-01 01:00:00 S0B3CGQ,0"
    (broken / uber_data.SAMPLE_FILE).write_text("\n".join(lines) + "\n")
    run = compete("run", "uberct", "--data", broken, "--fast", "--quiet", "--run-dir", tmp_path / "run", cwd=tmp_path, check=False)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "row 4" in run.stderr and uber_data.SAMPLE_FILE in run.stderr


def test_the_validation_block_is_kept_as_out_of_fold_rows_in_submission_shape():
    """What `compete blend` reads of an uberct run: each validation row under the sample's
    "<hour> x <segment>" id, its probability, its label, and its half of the block as its
    fold (the rule fitted on one half scores the other)."""
    from competitions.uberct.validate import validation_out_of_fold
    from competitions.uberct.features import Rows

    class Context:
        ids = np.array(["S1", "S2"], dtype=object)
        block_days = 1
    hours = np.datetime64("2019-01-01T00", "h") + np.arange(24)
    rows = Rows(np.r_[np.zeros(24), np.ones(24)].astype(np.int32), np.r_[hours, hours], np.zeros(48, np.int32),
                (np.arange(48) % 7 == 0).astype(np.int8))
    p = np.linspace(0.01, 0.5, 48)
    oof = validation_out_of_fold(Context(), rows, p)
    assert oof.predictions.columns.tolist() == [uber_data.ID, uber_data.TARGET] == oof.truth.columns.tolist()
    assert oof.predictions[uber_data.ID].iloc[0] == "2019-01-01 00:00:00 x S1"
    assert oof.predictions[uber_data.ID].iloc[47] == "2019-01-01 23:00:00 x S2"
    assert oof.predictions[uber_data.ID].is_unique
    assert np.allclose(oof.predictions[uber_data.TARGET], p) and oof.truth[uber_data.TARGET].tolist() == rows.label.tolist()
    assert oof.fold.tolist() == ([0] * 12 + [1] * 12) * 2
