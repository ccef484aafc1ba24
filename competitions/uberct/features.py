"""The segment x hour panel and its features.

A row is one road segment in one hour. Its features: the calendar of the hour, the
segment's attributes and geometry, its own and its neighbours' incident history,
and, when those files are present, the weather, the road's SANRAL traffic and the
zone's Uber Movement congestion at that hour.

History is taken "as of" a day before the row, never after it: for the test rows the
first test day; for training rows the first day of their block, where blocks have the
test period's length and end where the training data ends. A training row then looks
exactly like a test row: a block of hours right after the history it is described by.

The full panel (every segment x every hour of three years, ~14 M rows) is never built:
training keeps every positive cell and a uniform sample of the negative cells, and the
model is told the sampling rate so its probabilities stay calibrated.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from competitions.uberct import data as uber_data
from competitions.uberct import level as uber_level

log = logging.getLogger("compete")

HOUR = np.timedelta64(1, "h")
DAY = np.timedelta64(1, "D")
# Parts of the day with their own incident rate: night, morning peak, day, evening peak, late.
BUCKET_OF_HOUR = np.array([0] * 6 + [1] * 4 + [2] * 5 + [3] * 5 + [4] * 4)
HOURS_IN_BUCKET = np.bincount(BUCKET_OF_HOUR)
WINDOWS = (30, 90, 365)  # days of recent history
PRIOR_INCIDENTS = 5.0  # the offset's rate is shrunk towards the city's as if by this many incidents at its mean
SHRUNK = "log_rate_all_shrunk"  # the all-history rate, shrunk towards the city's
OFFSET = "offset"  # the model's starting log-odds of a row (competitions.uberct.model)
LEVEL = "log_rate_level"  # the level filter's forecast (competitions.uberct.level)
OFFSETS = ("shrunk", "level")  # what the offset copies: SHRUNK or LEVEL
NEIGHBOURS = 10
NEIGHBOUR_KM = 3.0
MIN_COVERAGE = 0.9  # an extra source is used only when it covers this share of the test hours


def public_holidays(years) -> set[pd.Timestamp]:
    """South African public holidays; one falling on a Sunday moves to the Monday."""
    from dateutil.easter import easter

    days = set()
    for year in years:
        for month, day in ((1, 1), (3, 21), (4, 27), (5, 1), (6, 16), (8, 9), (9, 24), (12, 16), (12, 25), (12, 26)):
            date = pd.Timestamp(year, month, day)
            days.add(date)
            if date.day_of_week == 6:
                days.add(date + pd.Timedelta(days=1))
        sunday = pd.Timestamp(easter(year))
        days.update({sunday - pd.Timedelta(days=2), sunday + pd.Timedelta(days=1)})  # Good Friday, Family Day
    return days


@dataclass
class Rows:
    """Panel rows: segment position, hour, the day their history is taken as of
    (days since the context's origin), and the label when known."""

    segment: np.ndarray   # int32
    hour: np.ndarray      # datetime64[h]
    as_of: np.ndarray     # int32
    label: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.segment)


class Context:
    """What the features need, built once from the loaded data: the segment table,
    neighbour weights, daily event counts and the hourly extras."""

    def __init__(self, data: uber_data.UberData, block_days: int | None = None, offset: str = "shrunk"):
        if offset not in OFFSETS:
            raise ValueError(f"unknown offset {offset!r}; known: {', '.join(OFFSETS)}")
        self.offset = offset
        segments = data.segments
        ids = list(segments[uber_data.SEGMENT_ID])
        extra_ids = sorted(set(np.unique(data.test_segments)) - set(ids))
        self.ids = np.array(ids + extra_ids, dtype=object)
        self.position = pd.Series(np.arange(len(self.ids), dtype=np.int32), index=self.ids)
        self.mapped = len(ids)  # segments with a geometry come first

        test_start = data.test_times.min().astype("datetime64[D]")
        self.test_end = data.test_times.max().astype("datetime64[h]")
        first_event = data.events["time"].min() if len(data.events) else test_start
        self.origin = np.datetime64(first_event, "D")
        self.test_day = int((test_start - self.origin) / DAY)
        test_span = (self.test_end - test_start.astype("datetime64[h]")) / HOUR + 1
        self.block_days = int(block_days or np.ceil(test_span / 24))

        self.hour_origin = self.origin.astype("datetime64[h]")
        self.counts_by_day(data.events)
        self.static = self.static_features(segments)
        self.weights = self.neighbour_weights(segments)
        self.road = segments["ROADNO"].astype(str).to_numpy() if "ROADNO" in segments.columns else None
        self.hourly = self.hourly_extras(data)
        self.congestion = self.zone_congestion(data, segments)
        self._history_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._level_cache: dict[int, np.ndarray] = {}
        self.level_drift: tuple[float, float] | None = None  # the level filter's drift (persistence, size)
        self.level_choices: dict[int, dict] = {}  # as of day -> the level filter's hyperparameters

    # --- history -------------------------------------------------------------------
    def counts_by_day(self, events: pd.DataFrame) -> None:
        """Cumulative event counts per segment by day and by part of the day."""
        known = events[uber_data.SEGMENT_ID].isin(self.position.index).to_numpy()
        times = events["time"].to_numpy()[known]
        segment = self.position.reindex(events[uber_data.SEGMENT_ID].to_numpy()[known]).to_numpy()
        day = ((times.astype("datetime64[D]") - self.origin) / DAY).astype(np.int64)
        inside = (day >= 0) & (day < self.test_day)
        segment, day = segment[inside], day[inside]
        bucket = BUCKET_OF_HOUR[((times[inside].astype("datetime64[h]") - times[inside].astype("datetime64[D]")) / HOUR).astype(np.int64)]
        shape = (len(self.ids), self.test_day + 1)
        daily = np.zeros(shape, dtype=np.int32)
        np.add.at(daily, (segment, day + 1), 1)
        self.cumulative = np.cumsum(daily, axis=1)
        by_bucket = np.zeros((len(HOURS_IN_BUCKET),) + shape, dtype=np.int32)
        np.add.at(by_bucket, (bucket, segment, day + 1), 1)
        self.cumulative_bucket = np.cumsum(by_bucket, axis=2)

    def history(self, as_of: int) -> tuple[np.ndarray, np.ndarray]:
        """Per segment as of day `as_of`: (rates [segments, features], bucket rates
        [segments, buckets]). Rates are incidents per hour."""
        if as_of in self._history_cache:
            return self._history_cache[as_of]
        total = self.cumulative[:, as_of].astype(np.float64)
        exposure = max(as_of, 1) * 24.0
        columns = [total / exposure]
        for window in WINDOWS:
            start = max(as_of - window, 0)
            columns.append((total - self.cumulative[:, start]) / (max(as_of - start, 1) * 24.0))
        rates = np.column_stack(columns)
        neighbours = self.weights @ rates[:, [0, 2]]
        if self.road is not None:
            road = pd.Series(rates[: self.mapped, 0]).groupby(self.road).transform("mean").to_numpy()
            road = np.concatenate([road, np.full(len(self.ids) - self.mapped, np.nan)])
        else:
            road = np.full(len(self.ids), np.nan)
        table = np.column_stack([rates, neighbours, road, np.full(len(self.ids), as_of, dtype=float),
                                 self.log_shrunk_rate(total, exposure), np.zeros(len(self.ids))]).astype(np.float32)
        buckets = (self.cumulative_bucket[:, :, as_of].T / (max(as_of, 1) * HOURS_IN_BUCKET[None, :])).astype(np.float32)
        self._history_cache[as_of] = (table, buckets)
        return table, buckets

    def log_shrunk_rate(self, counts: np.ndarray, exposure: float) -> np.ndarray:
        """log of each segment's incident rate (per hour) over `exposure` hours, shrunk
        towards the city's mean: a Gamma-Poisson posterior mean with PRIOR_INCIDENTS
        incidents of prior, so a quiet segment's log rate stays finite. The default
        offset: the level filter (LEVEL, a feature beside it) expected no more on
        three synthetic seeds (bench/uberct_ceiling.py --runs)."""
        city = max(counts[: self.mapped].sum() / (exposure * max(self.mapped, 1)), 1e-9)
        return np.log((counts + PRIOR_INCIDENTS) / (exposure + PRIOR_INCIDENTS / city))

    HISTORY_COLUMNS = ["rate_all", *(f"rate_{w}d" for w in WINDOWS), "neighbour_rate_all", "neighbour_rate_90d",
                       "road_rate_all", "history_days", SHRUNK, LEVEL]

    # --- the level filter (competitions.uberct.level) ---------------------------------
    def month_of_day(self, day: np.ndarray) -> np.ndarray:
        """Calendar month (counted from the origin's) of days since the origin."""
        months = (np.asarray(day) * DAY + self.origin).astype("datetime64[M]")
        return (months - self.origin.astype("datetime64[M]")).astype(np.int64)

    def level_horizons(self) -> int:
        """Months a block's rows can lie ahead of its history's last month, and one more."""
        return int(np.ceil(self.block_days / 28)) + 2

    def level_offsets(self, as_of: int) -> np.ndarray:
        """log of each segment's forecast incidents per hour in the month of day `as_of` - 1
        (column 0) and the months after it: the level filter's posterior mean of exp(level)
        x the city's incidents per segment-hour over the last year before `as_of`."""
        if as_of in self._level_cache:
            return self._level_cache[as_of]
        if self.level_drift is None:
            # Chosen once, on the counts before the last block ahead of the test period,
            # so neither validation nor test is scored on counts that chose them.
            self.level_drift = uber_level.drift_by_evidence(*self.monthly_counts(self.blocks()[0][0] if self.blocks() else self.test_day))
        monthly, exposure = self.monthly_counts(as_of)
        ahead, prior_sd = uber_level.forecast(monthly, exposure, self.level_attributes(), self.level_distance_km(),
                                              *self.level_drift, self.level_horizons())
        year_start = max(as_of - 365, 0)
        recent = self.cumulative[: self.mapped, as_of] - self.cumulative[: self.mapped, year_start]
        city = max(recent.sum() / (max(self.mapped, 1) * max(as_of - year_start, 1) * 24.0), 1e-9)
        self._level_cache[as_of] = (ahead + np.log(city)).astype(np.float32)
        self.level_choices[as_of] = dict(persistence=self.level_drift[0], size=self.level_drift[1], prior_sd=round(prior_sd, 4))
        return self._level_cache[as_of]

    def row_levels(self, segment: np.ndarray, day: np.ndarray, as_of: int) -> np.ndarray:
        """log of the level filter's forecast incidents per hour of each row (a segment on a
        day since the origin) from the history as of day `as_of`, for the row's month."""
        ahead = self.level_offsets(as_of)
        horizon = self.month_of_day(day) - self.month_of_day(max(as_of - 1, 0))
        return ahead[segment, np.clip(horizon, 0, ahead.shape[1] - 1)]

    def monthly_counts(self, as_of: int) -> tuple[np.ndarray, np.ndarray]:
        """Each segment's incidents by calendar month before day `as_of` (the last month
        partial), and the exposure: the city's incidents that month per mapped segment."""
        last_month = int(self.month_of_day(max(as_of - 1, 0)))
        starts = np.searchsorted(self.month_of_day(np.arange(as_of)), np.arange(last_month + 1))
        monthly = np.diff(self.cumulative[:, np.r_[starts, as_of]], axis=1).astype(np.float64)  # segments x months
        return monthly, np.broadcast_to(monthly[: self.mapped].sum(axis=0) / max(self.mapped, 1), monthly.shape)

    def level_attributes(self) -> np.ndarray:
        """The level prior's regressors: an intercept, the shapefile's numeric attributes
        (standardised), its text attributes one-hot, and a junction (another road's
        segment within 400 m); rows of segments without a geometry are NaN."""
        columns = [np.ones(self.mapped)]
        for name in self.static.columns:
            if not name.startswith("attr_"):
                continue
            values = self.static[name].to_numpy()[: self.mapped]
            if values.dtype.kind == "i":
                columns += [(values == code).astype(float) for code in np.unique(values)[1:]]
            else:
                filled = np.where(np.isfinite(values), values, np.nanmean(values) if np.isfinite(values).any() else 0.0)
                spread = filled.std()
                if spread > 0:
                    columns.append((filled - filled.mean()) / spread)
        if "other_road_m" in self.static.columns:
            columns.append((self.static["other_road_m"].to_numpy()[: self.mapped] < 400).astype(float))
        table = np.column_stack(columns)
        return np.vstack([table, np.full((len(self.ids) - self.mapped, table.shape[1]), np.nan)])

    def level_distance_km(self) -> np.ndarray:
        """Distances between the centroids of the segments with a geometry."""
        return np.hypot(*(self.centroids[:, None, :] - self.centroids[None, :, :]).transpose(2, 0, 1)) / 1000

    # --- the segments --------------------------------------------------------------
    def static_features(self, segments) -> pd.DataFrame:
        """Attributes (numbers as they are, text as category codes) and geometry."""
        from scipy.spatial import cKDTree

        frame = pd.DataFrame(index=range(len(self.ids)))
        for column in segments.columns:
            if column in (uber_data.SEGMENT_ID, "geometry"):
                continue
            values = segments[column]
            if pd.api.types.is_numeric_dtype(values):
                frame[f"attr_{column}"] = pd.Series(values.to_numpy(dtype=float)).reindex(frame.index)
            else:
                codes, _ = pd.factorize(values.astype(str), sort=True)
                frame[f"attr_{column}"] = pd.Series(codes).reindex(frame.index).fillna(-1).astype(np.int32)
        geometry = segments.geometry
        centroid = np.column_stack([geometry.centroid.x, geometry.centroid.y])
        self.centroids = centroid
        start = np.array([np.asarray(g.coords[0]) if g is not None and not g.is_empty and g.geom_type == "LineString" else c
                          for g, c in zip(geometry, centroid)])
        end = np.array([np.asarray(g.coords[-1]) if g is not None and not g.is_empty and g.geom_type == "LineString" else c
                        for g, c in zip(geometry, centroid)])
        chord = np.hypot(*(end - start).T)
        bearing = np.arctan2(*(end - start).T[::-1])
        length = geometry.length.to_numpy()
        middle = centroid.mean(axis=0)
        tree = cKDTree(centroid)
        geometric = {
            "x_km": (centroid[:, 0] - middle[0]) / 1000, "y_km": (centroid[:, 1] - middle[1]) / 1000,
            "length_m": length, "sinuosity": length / np.maximum(chord, 1.0),
            "bearing_sin": np.sin(2 * bearing), "bearing_cos": np.cos(2 * bearing),
            "segments_500m": np.array([len(n) - 1 for n in tree.query_ball_point(centroid, 500)]),
            "segments_1km": np.array([len(n) - 1 for n in tree.query_ball_point(centroid, 1000)]),
        }
        if "ROADNO" in segments.columns:
            # A junction: another road's segment close by.
            road = segments["ROADNO"].astype(str).to_numpy()
            distance, index = tree.query(centroid, k=min(len(centroid), 25))
            other = road[index] != road[:, None]
            geometric["other_road_m"] = np.where(other, distance, np.inf).min(axis=1)
            geometric["other_road_m"][~np.isfinite(geometric["other_road_m"])] = 5000.0
        for name, values in geometric.items():
            frame[name] = pd.Series(np.asarray(values, dtype=float)).reindex(frame.index)
        return frame.astype({c: np.float32 for c in frame.columns if frame[c].dtype == np.float64})

    def neighbour_weights(self, segments):
        """Row-normalised weights of each segment's nearest segments (itself excluded)."""
        from scipy.sparse import csr_matrix
        from scipy.spatial import cKDTree

        n, mapped = len(self.ids), self.mapped
        k = min(NEIGHBOURS + 1, mapped)
        distance, index = cKDTree(self.centroids).query(self.centroids, k=k)
        distance, index = distance[:, 1:] / 1000, index[:, 1:]
        weight = np.where(distance <= NEIGHBOUR_KM, np.exp(-distance), 0.0)
        total = weight.sum(axis=1, keepdims=True)
        weight = np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)
        rows = np.repeat(np.arange(mapped), index.shape[1])
        return csr_matrix((weight.ravel(), (rows, index.ravel())), shape=(n, n))

    # --- extras --------------------------------------------------------------------
    def hourly_extras(self, data: uber_data.UberData) -> dict:
        """Hourly arrays from origin to the end of the test period: weather columns and
        each road's traffic. A source that does not cover the test hours is dropped."""
        hours = pd.date_range(pd.Timestamp(self.hour_origin), pd.Timestamp(self.test_end), freq="h")
        test_hours = hours >= pd.Timestamp(self.origin + self.test_day * DAY)
        extras: dict = {"weather": {}, "traffic": None}
        if data.weather is not None:
            weather = data.weather.reindex(hours).ffill(limit=3)
            for column in weather.columns:
                values = weather[column].to_numpy(dtype=np.float32)
                coverage = np.isfinite(values[test_hours]).mean()
                if coverage >= MIN_COVERAGE:
                    extras["weather"][column] = values
                else:
                    log.info("weather %s covers %.0f%% of the test hours; not used", column, 100 * coverage)
        if data.traffic is not None and self.road is not None:
            traffic = data.traffic.copy()
            traffic["hour_of_week"] = traffic["time"].dt.day_of_week * 24 + traffic["time"].dt.hour
            usual = traffic.groupby(["site", "hour_of_week"])["count"].transform("median")
            traffic["ratio"] = traffic["count"] / usual.replace(0, np.nan)
            traffic["day"] = traffic["time"].dt.normalize()
            daily = traffic.groupby(["site", "day"])["count"].transform("sum")
            traffic["weekday"] = traffic["time"].dt.day_of_week
            day_total = traffic.groupby(["site", "day", "weekday"], as_index=False)["count"].sum()
            day_total["usual"] = day_total.groupby(["site", "weekday"])["count"].transform("median")
            traffic = traffic.merge(day_total[["site", "day", "usual"]], on=["site", "day"])
            traffic["day_ratio"] = daily.to_numpy() / traffic["usual"].replace(0, np.nan)
            by_road = traffic.groupby(["road", "time"])[["ratio", "day_ratio", "speed"]].mean()
            roads = sorted(set(by_road.index.get_level_values(0)) & set(self.road))
            arrays = {}
            for road in roads:
                table = by_road.loc[road].reindex(hours)
                coverage = table["ratio"].notna()[test_hours].mean()
                if coverage < MIN_COVERAGE:
                    log.info("SANRAL counts on %s cover %.0f%% of the test hours; not used", road, 100 * coverage)
                    continue
                arrays[road] = table.to_numpy(dtype=np.float32).T
            if arrays:
                extras["traffic"] = arrays
        return extras

    def zone_congestion(self, data: uber_data.UberData, segments) -> np.ndarray | None:
        """Congestion of each segment's Uber Movement zone by hour of day [segments, 24]."""
        if data.congestion is None or data.zones is None:
            return None
        import geopandas as gpd

        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(*self.centroids.T), crs=segments.crs)
        joined = gpd.sjoin(points, data.zones.to_crs(segments.crs), how="left", predicate="within")
        zone = joined[~joined.index.duplicated()]["zone"].to_numpy(dtype=float)
        table = data.congestion.pivot_table(index="zone", columns="hod", values="congestion").reindex(columns=range(24))
        result = np.full((len(self.ids), 24), np.nan, dtype=np.float32)
        found = np.isin(zone, table.index.to_numpy())
        result[: self.mapped][found] = table.reindex(zone[found]).to_numpy(dtype=np.float32)
        return result

    # --- rows and features ---------------------------------------------------------
    def blocks(self) -> list[tuple[int, int]]:
        """(first day, last day + 1) of each block, newest first: block 0 ends where the
        history ends; a block needs at least one block of history before it."""
        spans, stop = [], self.test_day
        while stop - self.block_days >= self.block_days:
            spans.append((stop - self.block_days, stop))
            stop -= self.block_days
        return spans

    def features(self, rows: Rows) -> pd.DataFrame:
        """The feature frame of `rows` (float32 numbers, int32 category codes)."""
        hour = rows.hour.astype("datetime64[h]")
        day = hour.astype("datetime64[D]")
        hour_of_day = ((hour - day) / HOUR).astype(np.int64)
        stamps = pd.DatetimeIndex(day)
        weekday = stamps.day_of_week.to_numpy()
        holidays = np.array(sorted(public_holidays(range(stamps.min().year, stamps.max().year + 1))), dtype="datetime64[D]")
        holiday = np.isin(day, holidays)
        columns: dict[str, np.ndarray] = {
            "hour": hour_of_day, "weekday": weekday, "resting": (weekday >= 5) | holiday, "holiday": holiday,
            "month": stamps.month.to_numpy(), "day_of_year": stamps.day_of_year.to_numpy(),
            "lead_days": ((day - self.origin) / DAY).astype(np.int64) - rows.as_of,
        }
        frame = pd.DataFrame({k: v.astype(np.int32 if k != "lead_days" else np.float32) for k, v in columns.items()})

        history = np.empty((len(rows), len(self.HISTORY_COLUMNS)), dtype=np.float32)
        bucket_rate = np.empty(len(rows), dtype=np.float32)
        bucket = BUCKET_OF_HOUR[hour_of_day]
        for as_of in np.unique(rows.as_of):
            chosen = rows.as_of == as_of
            table, buckets = self.history(int(as_of))
            history[chosen] = table[rows.segment[chosen]]
            bucket_rate[chosen] = buckets[rows.segment[chosen], bucket[chosen]]
            history[chosen, self.HISTORY_COLUMNS.index(LEVEL)] = self.row_levels(
                rows.segment[chosen], ((day[chosen] - self.origin) / DAY).astype(np.int64), int(as_of))
        for i, name in enumerate(self.HISTORY_COLUMNS):
            frame[name] = history[:, i]
        frame[OFFSET] = frame[LEVEL if self.offset == "level" else SHRUNK]
        frame["rate_part_of_day"] = bucket_rate

        static = self.static.to_numpy()
        static_frame = pd.DataFrame(static[rows.segment], columns=self.static.columns).astype(self.static.dtypes.to_dict())
        frame = pd.concat([frame, static_frame], axis=1)

        offset = ((hour - self.hour_origin) / HOUR).astype(np.int64)
        for name, values in self.hourly["weather"].items():
            frame[name] = values[offset]
            frame[f"{name}_previous_3h"] = np.nanmean([values[np.maximum(offset - lag, 0)] for lag in (1, 2, 3)], axis=0)
        if self.hourly["traffic"]:
            traffic = np.full((len(rows), 3), np.nan, dtype=np.float32)
            road = self.road[np.minimum(rows.segment, self.mapped - 1)]
            for name, table in self.hourly["traffic"].items():
                chosen = (road == name) & (rows.segment < self.mapped)
                traffic[chosen] = table[:, offset[chosen]].T
            frame[["traffic_ratio", "traffic_day_ratio", "traffic_speed"]] = traffic
        if self.congestion is not None:
            frame["zone_congestion"] = self.congestion[rows.segment, hour_of_day]
        return frame

    def categorical_columns(self, frame: pd.DataFrame) -> list[str]:
        """None: the text attributes are few-valued codes, split on like numbers. CatBoost's
        target statistics on them cost 2x the training time for no gain here."""
        return []

    def test_rows(self, data: uber_data.UberData) -> Rows:
        segment = self.position.reindex(data.test_segments).to_numpy().astype(np.int32)
        return Rows(segment, data.test_times.astype("datetime64[h]"), np.full(len(segment), self.test_day, dtype=np.int32))

    def positive_cells(self, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(segment, hour offset from origin) of each segment-hour with an incident."""
        known = events[uber_data.SEGMENT_ID].isin(self.position.index).to_numpy()
        segment = self.position.reindex(events[uber_data.SEGMENT_ID].to_numpy()[known]).to_numpy().astype(np.int64)
        offset = ((events["time"].to_numpy()[known].astype("datetime64[h]") - self.hour_origin) / HOUR).astype(np.int64)
        cells = np.unique(segment * (1 << 32) + offset)
        return (cells >> 32).astype(np.int32), cells & 0xFFFFFFFF

    def block_rows(self, events: pd.DataFrame, span: tuple[int, int], negative_rate: float, rng) -> Rows:
        """Every positive cell of the block and each negative cell with probability
        `negative_rate` (1 keeps the whole block)."""
        first, stop = span
        segments = len(self.ids)
        hours = (stop - first) * 24
        positive_segment, positive_offset = self.positive_cells(events)
        inside = (positive_offset >= first * 24) & (positive_offset < stop * 24)
        positive = positive_segment[inside].astype(np.int64) * hours + (positive_offset[inside] - first * 24)
        if negative_rate >= 1:
            cells = np.arange(segments * hours, dtype=np.int64)
        else:
            drawn = rng.binomial(segments * hours, negative_rate)
            cells = np.unique(np.concatenate([positive, rng.choice(segments * hours, drawn, replace=False)]))
        label = np.isin(cells, positive).astype(np.int8)
        segment = (cells // hours).astype(np.int32)
        hour = self.hour_origin + (first * 24 + cells % hours) * HOUR
        return Rows(segment, hour, np.full(len(cells), first, dtype=np.int32), label)


SEGMENT_HISTORY = ["rate_all", *(f"rate_{w}d" for w in WINDOWS), "neighbour_rate_all", "neighbour_rate_90d", "road_rate_all",
                   SHRUNK, "rate_part_of_day"]  # what the level offset already summarises, noisily


def trained_columns(frame: pd.DataFrame, segment_history: bool) -> pd.DataFrame:
    """The features the trees see: all, or without the segment's own history rates."""
    return frame if segment_history else frame.drop(columns=SEGMENT_HISTORY)


def concatenate(parts: list[Rows]) -> Rows:
    return Rows(np.concatenate([p.segment for p in parts]), np.concatenate([p.hour for p in parts]),
                np.concatenate([p.as_of for p in parts]), np.concatenate([p.label for p in parts]))
