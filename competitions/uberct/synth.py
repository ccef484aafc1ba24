"""Synthetic Uber Movement SANRAL Cape Town data from a known incident process.

Incidents on a segment in an hour are Poisson with rate

    segment risk (road class, lanes, condition, junctions, spatial hotspots, noise)
    x hour-of-week profile (sharper on freeways) x season x yearly growth
    x weather of the hour x the road's traffic that day x the zone's congestion at
    that hour x a slow drift of the segment x roadworks episodes

so the true probability 1 - exp(-rate) of every test row is known, and with it the
best F1 a model could reach (the oracle). The files follow the platform's formats
and carry its known dirt: shifted rows, missing agencies, segment ids the shapefile
lacks. The extras (hourly weather, Uber Movement zones and travel times, SANRAL
counts) carry signal the process uses, so a pipeline that reads them gains.
"""
from __future__ import annotations

import json
import string
import tempfile
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.thresholds import best_threshold, expected_f1_count, top_k
from competitions.uberct import data as uber_data
from competitions.uberct.features import public_holidays


@dataclass(frozen=True)
class Scale:
    segments: int          # in the shapefile (and the sample)
    unknown_segments: int  # ids in train.csv the shapefile lacks
    roads: int
    train_start: str
    test_days: int
    events: int            # expected incidents in the training period
    shifted_rows: int
    missing_agency: int
    roadworks: int


SCALES = {
    "full": Scale(544, 5, 14, "2016-01-01", 90, 54_000, 5, 1_614, 25),
    "small": Scale(16, 1, 2, "2018-01-01", 14, 2_500, 2, 40, 1),
}
TEST_START = pd.Timestamp("2019-01-01")
CENTRE = (18.60, -33.93)  # lon, lat of the local km frame
KM_PER_DEGREE = (111.32 * np.cos(np.radians(CENTRE[1])), 110.57)
ROADS = [("N1", "Freeway"), ("M5", "Major arterial"), ("N2", "Freeway"), ("N7", "Freeway"), ("M3", "Freeway"),
         ("R300", "Freeway"), ("M7", "Major arterial"), ("R102", "Minor arterial"), ("M12", "Major arterial"),
         ("R27", "Major arterial"), ("M14", "Minor arterial"), ("M62", "Minor arterial"), ("M18", "Minor arterial"),
         ("R44", "Major arterial")]
CLASS_RISK = {"Freeway": 0.5, "Major arterial": 0.0, "Minor arterial": -0.5}
CLASS_PEAKINESS = {"Freeway": 1.2, "Major arterial": 1.0, "Minor arterial": 0.85}
CAUSES = {
    "Stationary Vehicle": (0.70, ["Breakdown", "Tyre blowout", "Out of fuel", "Abandoned vehicle"]),
    "Congestion": (0.12, ["Heavy traffic", "Peak hour"]),
    "Accident": (0.08, ["Minor", "With injuries", "Fatal"]),
    "Crash": (0.06, ["Vehicle vs vehicle", "Rollover"]),
    "Debris on road": (0.02, ["Debris"]),
    "Vehicle on fire": (0.01, ["Vehicle fire"]),
    "Roadworks": (0.01, ["Maintenance"]),
}
AGENCIES = (["Cameras", "Law Enforcement", "Other", "Freeway Management Centre"], [0.6, 0.15, 0.2, 0.05])
VEHICLE_CLASSES = (["Light", "Short", "Medium", "Long"], [0.82, 0.10, 0.05, 0.03])
# The parts of the process no input shows (bench/uberct_ceiling.py forms their expectations from these).
RISK_NOISE_SD = 0.35             # a segment's own log risk, beyond its attributes and place
CITY_DAY_SD = 0.08               # the city's day, log, independent by day
ROAD_DAY_AR, ROAD_DAY_SD = 0.4, 0.18  # a road's day, log: AR(1) by day (observed on national roads via SANRAL)
DRIFT_AR, DRIFT_SD = 0.85, 0.1   # a segment's drift, log: AR(1) by month from 0
SITE_PLACES = ["Plattekloof", "Airport", "Potsdam", "Durbanville", "Somerset West", "Koeberg", "Borcherds Quarry", "Sable"]


def synth(out_dir: Path, seed: int = 0, scale: str = "small") -> None:
    if scale not in SCALES:
        raise io.InputError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    Generator(SCALES[scale], seed).write(Path(out_dir))


@dataclass(frozen=True)
class Factors:
    """The factors of `Generator.rates`, kept so an analysis can swap one for what a
    model could know (its expectation, a forecast) and recompose the rate with
    `rates()`. Per-hour arrays run over `Generator.hours`, per-day over `Generator.days`."""

    log_risk: np.ndarray          # segment: attributes, junctions, hotspots, noise
    drift: np.ndarray             # segment x month, log: AR(1) with DRIFT_AR and innovation sd DRIFT_SD, 0 in month 0
    month_of_hour: np.ndarray     # hour -> column of `drift`
    day_of_hour: np.ndarray       # hour -> day
    hour_of_day: np.ndarray       # hour -> 0..23
    day_profile: np.ndarray       # hour: working-day or resting-day profile, raised to `peakiness`
    peakiness: np.ndarray         # segment: by road class
    season_weather: np.ndarray    # hour: season x yearly growth x weather
    city_day: np.ndarray          # day: the city's day, exp(N(0, CITY_DAY_SD^2)), unobserved
    road_day: np.ndarray          # road x day: the road's traffic level (raised to 1.5), seen in SANRAL counts on national roads
    road_of_segment: np.ndarray   # segment -> row of `road_day`
    zone_of_segment: np.ndarray   # segment -> row of `congestion`
    congestion: np.ndarray        # zone x hour of day, mean 1 per zone (raised to 1.2)
    roadwork_episodes: np.ndarray  # (segment, first day, stop day) rows, in drawing order
    roadworks: np.ndarray         # segment x day: 3 on the segment, 1.8 on its road neighbours, per episode
    normaliser: np.float64        # scales the training period to `Scale.events`

    def rates(self) -> np.ndarray:
        """The rate of every segment x hour (float32), in the generator's own order of
        operations, so the true factors give its rates bit for bit."""
        other = self.season_weather * self.city_day[self.day_of_hour]
        months, days, hod = self.month_of_hour, self.day_of_hour, self.hour_of_day
        rates = np.empty((len(self.log_risk), len(months)), dtype=np.float32)
        for i in range(len(rates)):
            rates[i] = (np.exp(self.log_risk[i] + self.drift[i, months]) * self.day_profile ** self.peakiness[i] * other
                        * self.road_day[self.road_of_segment[i], days] ** 1.5 * self.congestion[self.zone_of_segment[i], hod] ** 1.2
                        * self.roadworks[i, days])
        rates *= np.float64(self.normaliser)  # a float64 scalar: a float32 product rounded once, as the generator did
        return rates


def roadworks_multiplier(episodes, segments: int, days: int, neighbours_along_road: list[np.ndarray]) -> np.ndarray:
    """Segment x day multiplier of roadwork episodes (segment, first day, stop day):
    x3 on the segment and x1.8 on its neighbours along the road, applied in order."""
    roadworks = np.ones((segments, days), dtype=np.float32)
    for segment, start, stop in episodes:
        roadworks[segment, start:stop] *= 3.0
        roadworks[neighbours_along_road[segment], start:stop] *= 1.8
    return roadworks


def _bump(x, centre, width):
    return np.exp(-0.5 * ((x - centre) / width) ** 2)


def day_profile(hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Relative incident rate by hour of day: commuter peaks on working days, a
    midday hump and late nights at weekends and on public holidays."""
    working = 0.25 + 2.6 * _bump(hour, 7.5, 1.0) + 1.0 * _bump(hour, 12.5, 3.0) + 3.0 * _bump(hour, 17.0, 1.3) + 0.5 * _bump(hour, 21, 2)
    resting = 0.35 + 1.2 * _bump(hour, 13, 3.5) + 0.5 * _bump(hour, 1, 1.5)
    return np.where(weekend, resting, working)


class Generator:
    def __init__(self, scale: Scale, seed: int):
        self.scale = scale
        self.rng = np.random.default_rng(seed)
        self.hours = pd.date_range(scale.train_start, TEST_START + pd.Timedelta(days=scale.test_days), freq="h", inclusive="left")
        self.test_hours = self.hours[self.hours > TEST_START]  # 01:00 on the first day, as the platform's sample
        self.train_mask = self.hours < TEST_START
        self.days = self.hours.normalize().unique()

    # --- the road network -------------------------------------------------------------
    def network(self) -> None:
        s, rng = self.scale, self.rng
        roads = ROADS[: s.roads]
        share = rng.dirichlet(np.full(len(roads), 4.0))
        counts = np.maximum(4, np.floor(share * s.segments).astype(int))
        counts[np.argmax(counts)] += s.segments - counts.sum()
        vertices, road_of, class_of = [], [], []
        for (road, road_class), count in zip(roads, counts):
            position = rng.uniform(-10, 10, 2)
            heading = rng.uniform(0, 2 * np.pi)
            for _ in range(count):
                length = rng.uniform(0.35, 0.6)
                line = [position.copy()]
                for _ in range(5):
                    if np.hypot(*position) > 15:  # steer back towards the city
                        towards = np.arctan2(-position[1], -position[0])
                        heading += 0.3 * np.angle(np.exp(1j * (towards - heading)))
                    heading += rng.normal(0, 0.05)
                    position = position + length / 5 * np.array([np.cos(heading), np.sin(heading)])
                    line.append(position.copy())
                vertices.append(line)
                road_of.append(road)
                class_of.append(road_class)
        known = np.array(vertices)
        centroids = known.mean(axis=1)
        # Ids in the incident log but not in the shapefile: short ramps away from it.
        extra = []
        while len(extra) < s.unknown_segments:
            start = rng.uniform(-14, 14, 2)
            if np.min(np.hypot(*(centroids - start).T)) > 0.8:
                direction = rng.uniform(0, 2 * np.pi)
                extra.append([start + t * 0.06 * np.array([np.cos(direction), np.sin(direction)]) for t in range(6)])
        self.vertices = np.concatenate([known, np.array(extra).reshape(-1, 6, 2)]) if extra else known
        self.known = len(known)
        self.road_of = np.array(road_of + ["ramp"] * len(extra))
        self.class_of = np.array(class_of + ["Minor arterial"] * len(extra))
        alphabet = np.array(list(string.ascii_uppercase + string.digits))
        ids = set()
        while len(ids) < len(self.vertices):
            ids.add("S" + "".join(rng.choice(alphabet, 6)))
        self.ids = np.array(sorted(ids))
        self.ids = self.ids[rng.permutation(len(self.ids))]
        self.centroids = self.vertices.mean(axis=1)

        n = len(self.vertices)
        self.lanes = np.where(self.class_of == "Freeway", rng.integers(3, 5, n), rng.integers(1, 4, n))
        self.condition = rng.choice(["Very Good", "Good", "Fair", "Poor"], n, p=[0.2, 0.45, 0.25, 0.1])
        self.surface = rng.choice(["Asphalt", "Concrete"], n, p=[0.85, 0.15])
        self.pavement = np.where(self.surface == "Concrete", "Rigid", rng.choice(["Flexible", "Composite"], n, p=[0.8, 0.2]))
        self.width = np.round(self.lanes * 3.5 + rng.normal(1.0, 0.6, n), 1)

    def risk(self) -> np.ndarray:
        """Log risk of each segment: attributes, junctions, hotspots and noise."""
        rng, n = self.rng, len(self.vertices)
        log_risk = np.array([CLASS_RISK[c] for c in self.class_of]) + 0.1 * self.lanes
        log_risk += np.select([self.condition == "Poor", self.condition == "Fair"], [0.3, 0.1], 0.0)
        distance = np.hypot(*(self.centroids[:, None, :] - self.centroids[None, :, :]).transpose(2, 0, 1))
        other_road = self.road_of[:, None] != self.road_of[None, :]
        log_risk += 0.5 * (np.where(other_road, distance, np.inf).min(axis=1) < 0.4)
        for centre in self.centroids[rng.choice(self.known, max(3, self.known // 18), replace=False)]:
            radius = rng.uniform(0.8, 2.5)
            log_risk += rng.normal(0.8, 0.3) * np.exp(-0.5 * np.sum((self.centroids - centre) ** 2, axis=1) / radius ** 2)
        self.risk_noise = rng.normal(0, RISK_NOISE_SD, n)  # kept: the part of the risk no attribute or place explains
        log_risk += self.risk_noise
        self.neighbours_along_road = [np.flatnonzero((self.road_of == self.road_of[i]) & (np.abs(np.arange(n) - i) == 1)) for i in range(n)]
        return log_risk

    # --- what varies in time ---------------------------------------------------------
    def weather(self) -> pd.DataFrame:
        rng, hours = self.rng, self.hours
        month = hours.month.to_numpy()
        winter = (np.cos(2 * np.pi * (month - 7) / 12) + 1) / 2
        start = 0.004 + 0.03 * winter
        draws = rng.random(len(hours))
        wet = np.zeros(len(hours), dtype=bool)
        for t in range(1, len(hours)):  # a two-state Markov chain: rain comes in spells
            wet[t] = draws[t] < (0.82 if wet[t - 1] else start[t])
        rain = np.where(wet, rng.gamma(1.2, 1.5, len(hours)), 0.0)
        day_of_year = hours.day_of_year.to_numpy()
        hod = hours.hour.to_numpy()
        temperature = 17 + 5 * np.cos(2 * np.pi * (day_of_year - 30) / 365.25) + 4 * np.sin(2 * np.pi * (hod - 9) / 24)
        temperature += np.convolve(rng.normal(0, 1.5, len(hours)), np.ones(12) / np.sqrt(12), mode="same") - 2 * wet
        summer = 1 - winter
        gust = np.repeat(rng.gamma(2.0, 1.0, len(self.days)), 24)[: len(hours)]
        wind = 12 + 14 * summer * gust + rng.gamma(2.0, 2.5, len(hours))
        visibility = np.clip(10 - 7 * rain / (rain + 2) + rng.normal(0, 0.4, len(hours)), 0.5, 10)
        humidity = np.clip(62 + 25 * wet - 0.8 * (temperature - 17) + rng.normal(0, 6, len(hours)), 15, 100)
        self.weather_factor = 1 + 0.9 * wet + 0.15 * np.minimum(rain, 6) + 0.3 * (wind > 45)
        return pd.DataFrame({"datetime": hours.strftime("%Y-%m-%d %H:%M"), "temperature_c": temperature.round(1),
                             "precipitation_mm": rain.round(1), "wind_speed_kmh": wind.round(1),
                             "visibility_km": visibility.round(1), "relative_humidity": humidity.round(0).astype(int)})

    def road_days(self) -> np.ndarray:
        """Each road's traffic that day, relative to usual: an AR(1) in log."""
        roads = np.unique(self.road_of)
        shocks = self.rng.normal(0, ROAD_DAY_SD, (len(roads), len(self.days)))
        level = np.zeros_like(shocks)
        for d in range(len(self.days)):
            level[:, d] = (ROAD_DAY_AR * level[:, d - 1] if d else 0) + shocks[:, d]
        self.road_names = roads
        self.road_day_levels = np.exp(level)
        return self.road_day_levels

    def zones(self):
        """Square travel zones of 5 km with a congestion amplitude each."""
        xs, ys = np.arange(-20, 20, 5.0), np.arange(-17.5, 17.5, 5.0)
        self.zone_origin = (xs[0], ys[0])
        self.zone_shape = (len(xs), len(ys))
        self.zone_amplitude = self.rng.uniform(0.1, 0.9, len(xs) * len(ys))
        column = np.clip(((self.centroids[:, 0] - xs[0]) // 5).astype(int), 0, len(xs) - 1)
        row = np.clip(((self.centroids[:, 1] - ys[0]) // 5).astype(int), 0, len(ys) - 1)
        self.zone_of = column * len(ys) + row
        hod = np.arange(24)
        peaks = _bump(hod, 7.5, 1.2) + _bump(hod, 17, 1.5)
        self.congestion = 1 + self.zone_amplitude[:, None] * peaks[None, :]  # zone x hour of day

    def rates(self, log_risk: np.ndarray) -> np.ndarray:
        """The incident rate of every segment x hour (float32), scaled so the training
        period expects `scale.events` incidents. Its factors stay on `self.factors`."""
        rng, hours = self.rng, self.hours
        n = len(self.vertices)
        holidays = public_holidays(range(hours[0].year, hours[-1].year + 1))
        dates = hours.normalize()
        resting = (hours.day_of_week.to_numpy() >= 5) | np.isin(dates.to_numpy(), np.array(sorted(holidays), dtype="datetime64[ns]"))
        hod = hours.hour.to_numpy()
        base = day_profile(hod, resting)
        years = (hours - hours[0]).days.to_numpy() / 365.25
        season_weather = (1 + 0.12 * np.cos(2 * np.pi * (hours.day_of_year.to_numpy() - 190) / 365.25)) * 1.05 ** years
        season_weather *= self.weather_factor
        day_index = ((dates - dates[0]).days).to_numpy()
        city_day = np.exp(rng.normal(0, CITY_DAY_SD, len(self.days)))  # the city's day, unobserved
        road_day = self.road_days()
        months = (hours.year.to_numpy() - hours[0].year) * 12 + hours.month.to_numpy() - 1
        drift = np.zeros((n, months.max() + 1))
        for m in range(1, drift.shape[1]):
            drift[:, m] = DRIFT_AR * drift[:, m - 1] + rng.normal(0, DRIFT_SD, n)
        episodes = []
        for _ in range(self.scale.roadworks):
            segment = rng.integers(self.known)
            start = rng.integers(len(self.days))
            episodes.append((segment, start, start + rng.integers(30, 100)))
        unscaled = Factors(
            log_risk=log_risk, drift=drift, month_of_hour=months, day_of_hour=day_index, hour_of_day=hod,
            day_profile=base, peakiness=np.array([CLASS_PEAKINESS[c] for c in self.class_of]),
            season_weather=season_weather, city_day=city_day, road_day=road_day,
            road_of_segment=np.searchsorted(self.road_names, self.road_of), zone_of_segment=self.zone_of,
            congestion=self.congestion / self.congestion.mean(axis=1, keepdims=True),
            roadwork_episodes=np.array(episodes, dtype=np.int64).reshape(-1, 3),
            roadworks=roadworks_multiplier(episodes, n, len(self.days), self.neighbours_along_road),
            normaliser=np.float64(1.0))
        rates = unscaled.rates()
        normaliser = self.scale.events / rates[:, self.train_mask].sum(dtype=np.float64)
        self.factors = replace(unscaled, normaliser=normaliser)
        rates *= normaliser
        return rates

    # --- writing ---------------------------------------------------------------------
    def simulate(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Draw the network, the weather, the rates and the incident counts: the hourly
        weather table, and the rates and counts of every segment x hour."""
        self.network()
        log_risk = self.risk()
        weather = self.weather()
        self.zones()
        rates = self.rates(log_risk)
        return weather, rates, self.rng.poisson(rates)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        weather, rates, counts = self.simulate()
        events = self.events(counts)
        self.write_segments(out / uber_data.SEGMENTS_ZIP)
        io.write_csv(self.incident_log(events[events["time"] < TEST_START]), out / uber_data.TRAIN_FILE)
        self.write_sample_and_answers(out, rates, counts, events)
        io.write_csv(weather, out / "weather_hourly.csv")
        self.write_uber(out)
        self.write_sanral(out)

    def events(self, counts: np.ndarray) -> pd.DataFrame:
        rng = self.rng
        segment, hour = np.nonzero(counts)
        repeat = counts[segment, hour]
        segment, hour = np.repeat(segment, repeat), np.repeat(hour, repeat)
        times = self.hours[hour] + pd.to_timedelta(rng.integers(0, 60, len(hour)), unit="min")
        where = rng.random(len(hour)) * 5
        step = np.minimum(where.astype(int), 4)
        start, stop = self.vertices[segment, step], self.vertices[segment, step + 1]
        points = start + (where - step)[:, None] * (stop - start) + rng.normal(0, 0.015, (len(hour), 2))
        lon, lat = self._degrees(points)
        frame = pd.DataFrame({"segment": segment, "time": times, "longitude": lon, "latitude": lat})
        return frame.sort_values(["time", "segment"], kind="stable").reset_index(drop=True)

    def incident_log(self, events: pd.DataFrame) -> pd.DataFrame:
        rng, s = self.rng, self.scale
        n = len(events)
        names = list(CAUSES)
        cause_index = rng.choice(len(names), n, p=[CAUSES[c][0] for c in names])
        cause = np.array(names)[cause_index]
        subcause = np.array([CAUSES[names[i]][1][j % len(CAUSES[names[i]][1])] for i, j in zip(cause_index, rng.integers(0, 12, n))])
        frame = pd.DataFrame({
            uber_data.EVENT_ID: (60_000 + np.cumsum(rng.integers(1, 4, n))).astype(str),
            uber_data.EVENT_TIME: events["time"].dt.strftime(uber_data.EVENT_TIME_FORMAT),
            uber_data.AGENCY: rng.choice(AGENCIES[0], n, p=AGENCIES[1]),
            "Cause": cause, "Subcause": subcause, "Status": "Closed",
            "longitude": events["longitude"].map("{:.6f}".format),
            "latitude": events["latitude"].map("{:.6f}".format),
            "road_segment_id": self.ids[events["segment"].to_numpy()],
        })
        on_map = np.flatnonzero(events["segment"].to_numpy() < self.known)
        missing = rng.choice(n, min(s.missing_agency, n), replace=False)
        frame.loc[missing, uber_data.AGENCY] = ""
        # A comma inside Subcause shifted these rows right; the segment id fell off.
        shifted = rng.choice(on_map, min(s.shifted_rows, len(on_map)), replace=False)
        frame.loc[shifted, "road_segment_id"] = frame.loc[shifted, "latitude"]
        frame.loc[shifted, "latitude"] = frame.loc[shifted, "longitude"]
        frame.loc[shifted, "longitude"] = frame.loc[shifted, "Status"]
        frame.loc[shifted, "Subcause"] = "Breakdown"
        frame.loc[shifted, "Status"] = " Tyre"
        return frame

    def _degrees(self, points_km: np.ndarray):
        return (CENTRE[0] + points_km[..., 0] / KM_PER_DEGREE[0]).round(6), (CENTRE[1] + points_km[..., 1] / KM_PER_DEGREE[1]).round(6)

    def write_segments(self, path: Path) -> None:
        import geopandas as gpd
        from shapely import LineString

        k = self.known
        lon, lat = self._degrees(self.vertices[:k])
        region = np.where(self.centroids[:k, 0] > 8, "Metro East", np.where(self.centroids[:k, 1] > 0, "Metro North", "Metro South"))
        lengths = 1000 * np.hypot(*np.diff(self.vertices[:k], axis=1).transpose(2, 0, 1)).sum(axis=1)
        frame = gpd.GeoDataFrame({
            "ROADNO": self.road_of[:k], "CLASS": self.class_of[:k], "REGION": region, "LANES": self.lanes[:k].astype(np.int32),
            "SURFTYPE": self.surface[:k], "PAVETYPE": self.pavement[:k], "CONDITION": self.condition[:k],
            "WIDTH": self.width[:k], "LENGTH": lengths.round(1), "segment_id": self.ids[:k],
        }, geometry=[LineString(np.column_stack([x, y])) for x, y in zip(lon, lat)], crs=uber_data.GEOGRAPHIC_CRS)
        with tempfile.TemporaryDirectory() as folder:
            shapefile = Path(folder) / uber_data.SHAPEFILE
            frame.to_file(shapefile, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
            dbf = shapefile.with_suffix(".dbf")
            header = bytearray(dbf.read_bytes())
            header[1:4] = bytes([119, 1, 1])  # GDAL stamps today's date here; pin it so a seed gives the same bytes
            dbf.write_bytes(bytes(header))
            with io.atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
                for member in sorted(Path(folder).iterdir()):
                    info = zipfile.ZipInfo(member.name, date_time=(2019, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, member.read_bytes())

    def test_cells(self) -> tuple[np.ndarray, pd.Series]:
        """The test hours (indices into `hours`) and the sample's ids in its row order:
        hour by hour, each hour over the shapefile's segments. A segment x hour array
        `a` gives the rows' values as `a[:known, test].T.ravel()`."""
        test = np.flatnonzero(self.hours > TEST_START)
        k = self.known
        stamps = self.hours[test].strftime(uber_data.ID_TIME_FORMAT).to_numpy()
        return test, pd.Series(np.repeat(stamps, k)) + uber_data.ID_SEPARATOR + pd.Series(np.tile(self.ids[:k], len(test)))

    def national_roads(self) -> list[str]:
        """The roads with SANRAL counting sites (their traffic each day is observed)."""
        return [r for r in self.road_names if r.startswith("N")]

    def write_sample_and_answers(self, out: Path, rates: np.ndarray, counts: np.ndarray, events: pd.DataFrame) -> None:
        test, ids = self.test_cells()
        k = self.known
        labels = (counts[:k, test].T.ravel() > 0).astype(np.int8)
        probabilities = 1 - np.exp(-rates[:k, test].T.ravel().astype(np.float64))
        io.write_csv(pd.DataFrame({uber_data.ID: ids, uber_data.TARGET: np.zeros(len(ids), dtype=np.int8)}), out / uber_data.SAMPLE_FILE)
        answers = out / "answers"
        io.write_csv(pd.DataFrame({uber_data.ID: ids, uber_data.TARGET: labels}), answers / "solution.csv")
        io.write_csv(pd.DataFrame({uber_data.ID: ids, "probability": probabilities}), answers / "probabilities.csv", float_format="%.6g")
        test_events = events[(events["time"] >= self.test_hours[0]) & (events["segment"] < k)]
        io.write_csv(pd.DataFrame({"time": test_events["time"].dt.strftime(uber_data.ID_TIME_FORMAT[:-3]),
                                   uber_data.SEGMENT_ID: self.ids[test_events["segment"].to_numpy()]}), answers / "test_events.csv")
        oracle = best_threshold(labels, probabilities)
        expected = top_k(probabilities, expected_f1_count(probabilities))
        summary = {
            "scale": asdict(self.scale), "test_rows": len(ids), "test_positives": int(labels.sum()),
            "training_events": int(counts[:, self.train_mask].sum()),
            "oracle_f1": round(oracle.f1, 6), "oracle_threshold": oracle.threshold,
            "oracle_expected_f1_rule": round(float(2 * (labels & expected).sum() / (labels.sum() + expected.sum())), 6),
            "note": "oracle_f1: the true probabilities with the best threshold in hindsight; "
                    "oracle_expected_f1_rule: the true probabilities with the label-free expected-F1 count",
        }
        io.write_text(answers / "process.json", json.dumps(summary, indent=2) + "\n")

    def write_uber(self, out: Path) -> None:
        rng = self.rng
        columns, rows = self.zone_shape
        features = []
        for zone in range(columns * rows):
            x0 = self.zone_origin[0] + 5 * (zone // rows)
            y0 = self.zone_origin[1] + 5 * (zone % rows)
            corners = np.array([[x0, y0], [x0 + 5, y0], [x0 + 5, y0 + 5], [x0, y0 + 5], [x0, y0]])
            lon, lat = self._degrees(corners)
            features.append({"type": "Feature", "properties": {"MOVEMENT_ID": str(zone + 1), "DISPLAY_NAME": f"Zone {zone + 1}"},
                             "geometry": {"type": "Polygon", "coordinates": [np.column_stack([lon, lat]).tolist()]}})
        io.write_text(out / uber_data.ZONES_FILE, json.dumps({"type": "FeatureCollection", "features": features}) + "\n")
        sources = np.unique(self.zone_of[: self.known])
        destinations = {z: rng.choice(columns * rows, 4, replace=False) for z in sources}
        distance = {z: rng.uniform(300, 1500, 4) for z in sources}
        start = pd.Timestamp(self.scale.train_start)
        for quarter in pd.period_range(start, TEST_START - pd.Timedelta(days=1), freq="Q"):
            frames = []
            for z in sources:
                mean = distance[z][:, None] * self.congestion[z][None, :] * np.exp(rng.normal(0, 0.05, (4, 24)))
                frame = pd.DataFrame({"sourceid": z + 1, "dstid": np.repeat(destinations[z] + 1, 24), "hod": np.tile(np.arange(24), 4),
                                      "mean_travel_time": mean.ravel().round(2)})
                frames.append(frame)
            trips = pd.concat(frames, ignore_index=True)
            trips = trips[rng.random(len(trips)) > 0.15].reset_index(drop=True)
            trips["standard_deviation_travel_time"] = (0.3 * trips["mean_travel_time"]).round(2)
            trips["geometric_mean_travel_time"] = (0.95 * trips["mean_travel_time"]).round(2)
            trips["geometric_standard_deviation_travel_time"] = 1.3
            io.write_csv(trips, out / f"cape_town-travel_zones-{quarter.year}-{quarter.quarter}-All-HourlyAggregate.csv")

    def write_sanral(self, out: Path) -> None:
        """Hourly counts at two sites on each national road; the header changed in 2018."""
        rng = self.rng
        national = self.national_roads()
        if not national:
            return
        hours = self.hours
        dates = hours.normalize()
        day_index = ((dates - dates[0]).days).to_numpy()
        weekend = hours.day_of_week.to_numpy() >= 5
        shape = day_profile(hours.hour.to_numpy(), weekend) ** 0.7
        shape /= shape.max()
        factor = self.road_day_levels
        sites = []
        for road in national:
            for place in rng.choice(SITE_PLACES, 2, replace=False):
                sites.append((road, f"{road} {place} ({rng.integers(1000, 9999)})", rng.uniform(1500, 3500)))
        frames = []
        for road, name, volume in sites:
            expected = volume * shape * factor[list(self.road_names).index(road), day_index] * np.exp(rng.normal(0, 0.06, len(hours)))
            for vehicle, share in zip(*VEHICLE_CLASSES):
                frames.append(pd.DataFrame({"site": name, "time": hours, "class": vehicle, "count": rng.poisson(expected * share),
                                            "speed": np.round(110 - 35 * (expected / volume) ** 2 + rng.normal(0, 3, len(hours)), 1)}))
        counts = pd.concat(frames, ignore_index=True).sort_values(["time", "site"], kind="stable")
        month = counts["time"].dt.to_period("M")
        for period, frame in counts.groupby(month, sort=True):
            if period.year < 2018:
                header = ["Region", "Site_name", "date", "hour", "Vehicle_class", "Total_count", "ave_speed"]
                date = frame["time"].dt.strftime("%Y/%m/%d")
            else:
                header = ["REGION", "SITE NAME", "DATE", "HOUR", "VEHICLE CLASS", "TOTAL COUNT", "AVERAGE SPEED"]
                date = frame["time"].dt.strftime("%Y-%m-%d")
            table = pd.DataFrame(dict(zip(header, ["Western Cape", frame["site"], date, frame["time"].dt.hour,
                                                    frame["class"], frame["count"], frame["speed"]])))
            io.write_csv(table, out / f"SANRAL_counts_{period.year}_{period.month:02d}.csv", sep=";")
