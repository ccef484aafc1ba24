"""Uber Movement SANRAL Cape Town files: read them, clean the incident log, and report
every dirty row by kind.

The incident log has known dirt: rows whose columns shifted right (a comma inside
`Subcause`), rows without a reporting agency, and segment ids the shapefile lacks.
Each kind is counted; a row is repaired when it can be, and left out of the panel
only with a reason that lands in the report.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from common import io
from common.submission import SubmissionFormat, read_sample as read_sample_file

if TYPE_CHECKING:  # the annotations only: geopandas is imported where it is used
    import geopandas

log = logging.getLogger("compete")

TRAIN_FILE = "train.csv"
SEGMENTS_ZIP = "road_segments.zip"
SHAPEFILE = "road_segments.shp"
SAMPLE_FILE = "SampleSubmission.csv"
ZONES_FILE = "cape_town_travel_zones.json"
WEATHER_WORD = "weather"  # participants brought their own hourly weather CSVs; any such name

ID = "datetime x segment_id"
TARGET = "prediction"
ID_SEPARATOR = " x "
ID_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SUBMISSION = SubmissionFormat(SAMPLE_FILE, id_column=ID, domain="binary", columns=(TARGET,))

EVENT_ID = "EventId"
EVENT_TIME = "Occurrence Local Date Time"
AGENCY = "Reporting Agency"
EVENT_COLUMNS = [EVENT_ID, EVENT_TIME, AGENCY, "Cause", "Subcause", "Status", "longitude", "latitude", "road_segment_id"]
EVENT_TIME_FORMAT = "%d/%m/%y %H:%M"  # day first, two-digit year: 01/01/16 00:53
SEGMENT_ID = "segment_id"

GEOGRAPHIC_CRS = "EPSG:4326"
METRIC_CRS = "EPSG:32734"  # UTM zone 34S: metres around Cape Town
SNAP_METRES = 50.0  # an event this close to a known segment belongs to it
UNKNOWN_AGENCY = "Unknown"


@dataclass
class UberData:
    events: pd.DataFrame          # clean incidents: EventId, time, segment_id, cause, agency, longitude, latitude
    segments: "geopandas.GeoDataFrame"  # segment_id, attributes, geometry in METRIC_CRS
    test_ids: np.ndarray          # the sample's ids, in its order
    test_times: np.ndarray        # datetime64[s] of each sample row
    test_segments: np.ndarray     # segment id of each sample row
    dirt: dict[str, int]          # dirty rows of train.csv by kind
    weather: pd.DataFrame | None = None   # hourly, numeric columns, DatetimeIndex
    traffic: pd.DataFrame | None = None   # road, time, site, count, speed (SANRAL)
    congestion: pd.DataFrame | None = None  # zone, hod, congestion (Uber Movement)
    zones: "geopandas.GeoDataFrame | None" = None
    sources: dict[str, str] = field(default_factory=dict)
    context: object = field(default=None, repr=False, compare=False)  # features.Context, built once (UberCapeTown.context)


def load(data_dir: Path) -> UberData:
    data_dir = Path(data_dir)
    segments = read_segments(data_dir)
    raw = read_events(io.find(data_dir, TRAIN_FILE))
    events, dirt = clean_events(raw, segments)
    ids, times, segment_ids = read_sample(io.find(data_dir, SAMPLE_FILE))
    unknown = np.setdiff1d(np.unique(segment_ids), segments[SEGMENT_ID].to_numpy())
    if len(unknown):
        log.warning("%s: %d segment id(s) of the sample are not in the shapefile (e.g. %s); they get no attributes",
                    SAMPLE_FILE, len(unknown), unknown[0])
    data = UberData(events, segments, ids, times, segment_ids, dirt,
                    sources={"train": TRAIN_FILE, "segments": segments.attrs.get("source", "")})
    data.weather, data.sources["weather"] = _optional(read_weather, data_dir)
    data.traffic, data.sources["traffic"] = _optional(read_sanral, data_dir)
    uber, data.sources["uber"] = _optional(read_uber, data_dir)
    if uber is not None:
        data.zones, data.congestion = uber
    return data


def _optional(reader, data_dir: Path):
    found = reader(data_dir)
    if found is None:
        return None, ""
    value, description = found
    log.info("extra data: %s", description)
    return value, description


# --- the incident log ----------------------------------------------------------------

def read_events(source) -> pd.DataFrame:
    """train.csv as text, one row per line. A row with a tenth field (an unquoted comma
    in a free-text field) is kept, with the surplus in an `extra` column."""
    names = io.header_names(source) + ["extra"]
    frame = io.read_table(source, EVENT_COLUMNS, header=None, skiprows=1, names=names, dtype=str, keep_default_na=False)
    frame.attrs["source"] = str(source)
    return frame


def _is_number(text: pd.Series) -> np.ndarray:
    return pd.to_numeric(text, errors="coerce").notna().to_numpy()


def clean_events(raw: pd.DataFrame, segments) -> tuple[pd.DataFrame, dict[str, int]]:
    """Repair what can be repaired, count every dirty row by kind, and return the
    events placed on a shapefile segment. Nothing leaves without being counted:
    rows = kept + the `excluded_*` counts."""
    frame = raw.copy()
    source = raw.attrs.get("source", TRAIN_FILE)
    dirt: dict[str, int] = {"rows": len(frame)}

    # Shifted right by one: Status sits in `longitude`, coordinates one column late,
    # and the segment id is lost (or pushed into a tenth field).
    shifted = ~_is_number(frame["longitude"]) & _is_number(frame["latitude"]) & _is_number(frame["road_segment_id"])
    dirt["shifted_columns"] = int(shifted.sum())
    if shifted.any():
        rows = frame.loc[shifted]
        frame.loc[shifted, "Subcause"] = rows["Subcause"] + "," + rows["Status"]
        frame.loc[shifted, "Status"] = rows["longitude"]
        frame.loc[shifted, "longitude"] = rows["latitude"]
        frame.loc[shifted, "latitude"] = rows["road_segment_id"]
        frame.loc[shifted, "road_segment_id"] = rows["extra"]
    other_extra = (frame["extra"].str.strip() != "") & ~shifted
    dirt["extra_field"] = int(other_extra.sum())

    agency = frame[AGENCY].str.strip()
    dirt["missing_agency"] = int((agency == "").sum())
    frame[AGENCY] = agency.mask(agency == "", UNKNOWN_AGENCY)

    # Day-first as Zindi ships it; a file re-saved month-first is read as such, a file
    # mixing both orders fails (common/io.py decides the order from the data).
    times, order, bad_time = io.day_month_times(frame[EVENT_TIME], EVENT_TIME_FORMAT, source, EVENT_TIME)
    dirt["month_first_dates"] = int(order == "swapped")
    dirt["excluded_bad_date"] = int(bad_time.sum())

    duplicate = frame[EVENT_ID].duplicated().to_numpy() & ~bad_time
    dirt["excluded_duplicate_event"] = int(duplicate.sum())

    longitude = pd.to_numeric(frame["longitude"], errors="coerce").to_numpy()
    latitude = pd.to_numeric(frame["latitude"], errors="coerce").to_numpy()
    known = set(segments[SEGMENT_ID])
    segment = frame["road_segment_id"].str.strip().to_numpy(dtype=object)
    on_shapefile = np.array([s in known for s in segment])
    needs_snap = ~on_shapefile
    dirt["unknown_segment"] = int((needs_snap & (segment != "") & ~shifted).sum())
    dirt["missing_segment"] = int(((segment == "") & ~shifted).sum())
    snapped = np.full(len(frame), None, dtype=object)
    if needs_snap.any():
        snapped[needs_snap] = snap_to_segments(longitude[needs_snap], latitude[needs_snap], segments)
    placed = np.where(on_shapefile, segment, snapped)
    recovered = needs_snap & pd.notna(placed)
    dirt["shifted_repaired"] = int((recovered & shifted).sum())
    dirt["unknown_segment_snapped"] = int((recovered & ~shifted).sum())
    unplaced = pd.isna(placed) & ~bad_time & ~duplicate
    dirt["excluded_no_segment"] = int(unplaced.sum())
    keep = ~bad_time & ~duplicate & ~unplaced
    dirt["kept"] = int(keep.sum())
    io.unusable_rows(source, len(frame), {"bad_date": bad_time, "duplicate_event": duplicate, "no_segment": unplaced},
                     examples=frame[EVENT_ID])

    events = pd.DataFrame({
        EVENT_ID: frame[EVENT_ID].to_numpy()[keep],
        "time": times.to_numpy()[keep].astype("datetime64[s]"),
        SEGMENT_ID: placed[keep].astype(str),
        "cause": frame["Cause"].to_numpy()[keep],
        "agency": frame[AGENCY].to_numpy()[keep],
        "longitude": longitude[keep],
        "latitude": latitude[keep],
    })
    log.info("%s: %d rows, %d kept; dirt: %s", source, dirt["rows"], dirt["kept"],
             ", ".join(f"{k}={v}" for k, v in dirt.items() if k not in ("rows", "kept") and v))
    return events.sort_values(["time", EVENT_ID], kind="stable").reset_index(drop=True), dirt


def snap_to_segments(longitude, latitude, segments, max_metres: float = SNAP_METRES) -> np.ndarray:
    """The id of the segment within `max_metres` of each point, else None."""
    import geopandas as gpd

    result = np.full(len(longitude), None, dtype=object)
    valid = np.isfinite(longitude) & np.isfinite(latitude)
    if not valid.any():
        return result
    points = gpd.GeoSeries(gpd.points_from_xy(longitude[valid], latitude[valid]), crs=GEOGRAPHIC_CRS).to_crs(segments.crs)
    tree_index, distance = segments.sindex.nearest(points, return_all=False, return_distance=True)
    point_at, segment_at = tree_index
    close = distance <= max_metres
    found = np.full(valid.sum(), None, dtype=object)
    found[point_at[close]] = segments[SEGMENT_ID].to_numpy()[segment_at[close]]
    result[valid] = found
    return result


# --- the road segments ---------------------------------------------------------------

def find_shapefile(data_dir: Path) -> io.Source:
    """road_segments.shp loose, one folder down, or inside a zip; else any single .shp."""
    found = io.find(data_dir, SHAPEFILE, required=False)
    if found is not None:
        return found
    import zipfile
    candidates = [io.Source(p) for p in sorted(Path(data_dir).glob("*.shp")) + sorted(Path(data_dir).glob("*/*.shp"))]
    for archive in sorted(Path(data_dir).glob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as opened:
                candidates += [io.Source(archive, m) for m in opened.namelist() if m.lower().endswith(".shp")]
        except zipfile.BadZipFile:
            continue
    if not candidates:
        raise io.InputError(f"{data_dir}: no road segment shapefile ({SHAPEFILE}, loose, one folder down or in {SEGMENTS_ZIP})")
    return candidates[0]


def read_segments(data_dir: Path):
    """The shapefile as a GeoDataFrame in metres, one row per segment id."""
    import geopandas as gpd

    source = find_shapefile(Path(data_dir))
    if source.member:
        io.check_archive(source.path)  # GDAL reads the zip itself: its declared sizes are bounded here
    path = f"/vsizip/{source.path.resolve()}/{source.member}" if source.member else str(source.path)
    try:
        segments = gpd.read_file(path)
    except Exception as error:  # GDAL raises its own types for a broken shapefile
        raise io.InputError(f"{source}: cannot read the shapefile: {' '.join(str(error).split())}") from None
    column = next((c for c in segments.columns if c.lower() == SEGMENT_ID), None)
    if column is None:
        raise io.InputError(f"{source}: no {SEGMENT_ID} attribute; found {', '.join(map(str, segments.columns))}")
    segments = segments.rename(columns={column: SEGMENT_ID})
    segments[SEGMENT_ID] = segments[SEGMENT_ID].astype(str).str.strip()
    duplicated = segments[SEGMENT_ID].duplicated()
    if duplicated.any():
        log.warning("%s: %d duplicated segment id(s) (e.g. %s); the first of each is used",
                    source, int(duplicated.sum()), segments.loc[duplicated, SEGMENT_ID].iloc[0])
        segments = segments.loc[~duplicated]
    if segments.crs is None:
        log.warning("%s: no .prj; assuming longitude/latitude (%s)", source, GEOGRAPHIC_CRS)
        segments = segments.set_crs(GEOGRAPHIC_CRS)
    segments = segments.to_crs(METRIC_CRS).reset_index(drop=True)
    segments.attrs["source"] = str(source)
    return segments


# --- the sample submission -----------------------------------------------------------

def read_sample(source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample's ids split into hour and segment: (ids, times, segment ids)."""
    frame = read_sample_file(source, SUBMISSION)
    ids = frame[ID]
    parts = ids.str.split(ID_SEPARATOR, n=1, expand=True, regex=False)
    if parts.shape[1] < 2:
        raise io.InputError(f"{source}: row 2: {ID}={ids.iloc[0]!r} is not '<YYYY-MM-DD HH:MM:SS> x <segment>'")
    times = pd.to_datetime(parts[0], format=ID_TIME_FORMAT, errors="coerce")
    bad = (times.isna() | parts[1].isna() | (parts[1].fillna("") == "")).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise io.InputError(f"{source}: row {row + 2}: {ID}={ids.iloc[row]!r} is not '<YYYY-MM-DD HH:MM:SS> x <segment>'")
    return ids.to_numpy(dtype=object), times.to_numpy().astype("datetime64[s]"), parts[1].to_numpy(dtype=object)


# --- optional extras -----------------------------------------------------------------

def _csv_files(data_dir: Path) -> list[Path]:
    data_dir = Path(data_dir)
    found = sorted(data_dir.glob("*.csv")) + sorted(data_dir.glob("*/*.csv"))
    return [p for p in found if p.name.lower() not in (TRAIN_FILE.lower(), SAMPLE_FILE.lower()) and "answers" not in p.parts[-2:-1]]


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _header(path: Path) -> tuple[str, list[str]]:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        line = handle.readline()
    separator = ";" if line.count(";") > line.count(",") else ","
    return separator, [_normalise(c) for c in line.strip().split(separator)]


def read_weather(data_dir: Path):
    """Hourly weather from any CSV with 'weather' in its name: a timestamp column (or a
    date and an hour column) and numeric columns, averaged per hour."""
    files = [p for p in _csv_files(data_dir) if WEATHER_WORD in p.name.lower()]
    if not files:
        return None
    frames = []
    for path in files:
        frame = io.read_table(path, complete=False)  # a participant's own file: every check but the final line end
        columns = {_normalise(c): c for c in frame.columns}
        stamp = next((columns[c] for c in columns if c in ("datetime", "time", "timestamp", "date", "dateutc")), None)
        if stamp is None:
            raise io.InputError(f"{path}: no datetime column (expected one of datetime, time, timestamp, date)")
        times = pd.to_datetime(frame[stamp], format="mixed", errors="coerce")
        if "hour" in columns and stamp != columns["hour"]:
            times = times + pd.to_timedelta(pd.to_numeric(frame[columns["hour"]], errors="coerce"), unit="h")
        bad = times.isna()
        if bad.any():
            log.warning("%s: %d row(s) with an unreadable time left out (first at row %d)", path, int(bad.sum()), int(np.flatnonzero(bad)[0]) + 2)
        values = frame.drop(columns=[c for c in (stamp, columns.get("hour")) if c]).apply(pd.to_numeric, errors="coerce")
        values = values.loc[:, values.notna().mean() > 0.5]
        frames.append(values.loc[~bad.to_numpy()].set_index(times[~bad].dt.floor("h").to_numpy()))
    weather = pd.concat(frames).groupby(level=0).mean().sort_index()
    weather.columns = [f"weather_{_normalise(c)}" for c in weather.columns]
    return weather, f"weather {', '.join(p.name for p in files)}: {len(weather)} hours, {weather.shape[1]} columns"


SANRAL_FIELDS = {
    "site": ("sitename", "site"),
    "date": ("date",),
    "hour": ("hour", "hr"),
    "count": ("totalcount", "count", "total"),
    "speed": ("avespeed", "averagespeed", "speed", "avgspeed"),
}
ROAD_PATTERN = r"\b([NMR]\d{1,3})\b"


def read_sanral(data_dir: Path):
    """SANRAL hourly vehicle counts: semicolon-separated monthly files in either header
    variant, summed over vehicle classes; the road number is read from the site name."""
    files = []
    for path in _csv_files(data_dir):
        separator, header = _header(path)
        if separator == ";" and any(a in header for a in SANRAL_FIELDS["site"]) and any(a in header for a in SANRAL_FIELDS["count"]):
            files.append(path)
    if not files:
        return None
    frames = []
    for path in files:
        frame = io.read_table(path, sep=";", complete=False, dtype=str, keep_default_na=False)
        columns = {_normalise(c): c for c in frame.columns}
        picked = {}
        for field_name, aliases in SANRAL_FIELDS.items():
            column = next((columns[a] for a in aliases if a in columns), None)
            if column is None and field_name != "speed":
                raise io.InputError(f"{path}: no {field_name} column (looked for {', '.join(aliases)})")
            picked[field_name] = frame[column] if column else pd.Series(np.nan, index=frame.index)
        frames.append(pd.DataFrame(picked))
    counts = pd.concat(frames, ignore_index=True)
    dates = counts["date"].str.strip()
    unique = dates.unique()
    parsed = pd.Series(pd.to_datetime(pd.Series(unique), format="mixed", errors="coerce").to_numpy(), index=unique)
    hour = pd.to_numeric(counts["hour"], errors="coerce")
    times = pd.Series(parsed.reindex(dates).to_numpy()) + pd.to_timedelta(hour, unit="h")
    total = pd.to_numeric(counts["count"], errors="coerce")
    speed = pd.to_numeric(counts["speed"], errors="coerce")
    road = counts["site"].str.extract(ROAD_PATTERN, expand=False)
    bad = times.isna() | total.isna()
    if bad.any():
        log.warning("SANRAL counts: %d row(s) with an unreadable date, hour or count left out", int(bad.sum()))
    traffic = pd.DataFrame({"road": road, "site": counts["site"].str.strip(), "time": times, "count": total, "speed": speed})[~bad.to_numpy()]
    unplaced = traffic["road"].isna()
    if unplaced.any():
        log.info("SANRAL counts: %d site(s) name no road number; their counts are not used", traffic.loc[unplaced, "site"].nunique())
    traffic = traffic[~unplaced]
    # Vehicle classes are separate rows: sum them; the speed is their mean.
    traffic = traffic.groupby(["road", "site", "time"], as_index=False).agg(count=("count", "sum"), speed=("speed", "mean"))
    return traffic, f"SANRAL counts in {len(files)} file(s): {traffic['site'].nunique()} sites on {traffic['road'].nunique()} road(s)"


def read_uber(data_dir: Path):
    """Uber Movement: the travel zones (GeoJSON) and the hour-of-day travel times.

    A zone's congestion at an hour is the mean, over trips leaving it, of the travel
    time at that hour over the trip's all-day mean."""
    zones_source = io.find(data_dir, ZONES_FILE, required=False)
    files = []
    for path in _csv_files(data_dir):
        _, header = _header(path)
        if "sourceid" in header and "dstid" in header and "meantraveltime" in header:
            files.append(path)
    if zones_source is None or not files:
        if zones_source is not None or files:
            log.info("Uber Movement: zones and travel times come together; one of them is missing, so neither is used")
        return None
    import geopandas as gpd
    zones = gpd.read_file(str(zones_source.path) if not zones_source.member else f"/vsizip/{zones_source.path.resolve()}/{zones_source.member}")
    id_column = next((c for c in zones.columns if _normalise(c) in ("movementid", "id", "zoneid")), None)
    if id_column is None:
        raise io.InputError(f"{zones_source}: no MOVEMENT_ID property in the zones")
    zones = zones.rename(columns={id_column: "zone"})[["zone", "geometry"]]
    zones["zone"] = pd.to_numeric(zones["zone"], errors="coerce")
    if zones.crs is None:
        zones = zones.set_crs(GEOGRAPHIC_CRS)
    trips = []
    skipped = []
    for path in files:
        frame = io.read_table(path, complete=False)
        frame.columns = [_normalise(c) for c in frame.columns]
        if "hod" not in frame.columns:
            skipped.append(path.name)  # monthly or daily aggregates carry no hour of day
            continue
        trips.append(frame[["sourceid", "dstid", "hod", "meantraveltime"]])
    if not trips:
        log.info("Uber Movement: no hour-of-day aggregate among %s; not used", ", ".join(skipped))
        return None
    trips = pd.concat(trips, ignore_index=True).apply(pd.to_numeric, errors="coerce").dropna()
    trips["relative"] = trips["meantraveltime"] / trips.groupby(["sourceid", "dstid"])["meantraveltime"].transform("mean")
    congestion = trips.groupby(["sourceid", "hod"], as_index=False)["relative"].mean()
    congestion.columns = ["zone", "hod", "congestion"]
    return (zones.to_crs(METRIC_CRS), congestion), (
        f"Uber Movement: {len(zones)} zones, {len(files) - len(skipped)} hour-of-day file(s)"
        + (f" ({len(skipped)} other aggregate(s) skipped)" if skipped else ""))
