"""House Prices features that respect the data description.

"NA" in the quality and feature columns means the house has none (no pool, no garage,
no basement), so it becomes the category "None" or the ordinal 0, never a missing
value. Ordinal quality scales become numbers; totals, ages and bath counts are
engineered; linear models see log-transformed skewed columns and one-hot categories.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, RobustScaler

NUMERIC = [
    "LotFrontage", "LotArea", "OverallQual", "OverallCond", "YearBuilt", "YearRemodAdd",
    "MasVnrArea", "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "1stFlrSF",
    "2ndFlrSF", "LowQualFinSF", "GrLivArea", "BsmtFullBath", "BsmtHalfBath", "FullBath",
    "HalfBath", "BedroomAbvGr", "KitchenAbvGr", "TotRmsAbvGrd", "Fireplaces", "GarageYrBlt",
    "GarageCars", "GarageArea", "WoodDeckSF", "OpenPorchSF", "EnclosedPorch", "3SsnPorch",
    "ScreenPorch", "PoolArea", "MiscVal", "MoSold", "YrSold",
]

# Columns where "NA" means the house has none of the thing.
NA_MEANS_NONE = [
    "Alley", "BsmtQual", "BsmtCond", "BsmtExposure", "BsmtFinType1", "BsmtFinType2",
    "FireplaceQu", "GarageType", "GarageFinish", "GarageQual", "GarageCond", "PoolQC",
    "Fence", "MiscFeature", "MasVnrType",
]
# Areas and counts that are NA in test.csv only because the house lacks the thing.
ZERO_WHEN_ABSENT = [
    "MasVnrArea", "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath",
    "BsmtHalfBath", "GarageCars", "GarageArea",
]

QUALITY = {"None": 0, "Po": 1, "Fa": 2, "TA": 3, "Gd": 4, "Ex": 5}
ORDINAL = {
    **{column: QUALITY for column in [
        "ExterQual", "ExterCond", "BsmtQual", "BsmtCond", "HeatingQC", "KitchenQual",
        "FireplaceQu", "GarageQual", "GarageCond", "PoolQC"]},
    "BsmtExposure": {"None": 0, "No": 1, "Mn": 2, "Av": 3, "Gd": 4},
    "BsmtFinType1": {"None": 0, "Unf": 1, "LwQ": 2, "Rec": 3, "BLQ": 4, "ALQ": 5, "GLQ": 6},
    "BsmtFinType2": {"None": 0, "Unf": 1, "LwQ": 2, "Rec": 3, "BLQ": 4, "ALQ": 5, "GLQ": 6},
    "GarageFinish": {"None": 0, "Unf": 1, "RFn": 2, "Fin": 3},
    "Functional": {"Sal": 0, "Sev": 1, "Maj2": 2, "Maj1": 3, "Mod": 4, "Min2": 5, "Min1": 6, "Typ": 7},
    "PavedDrive": {"N": 0, "P": 1, "Y": 2},
    "LandSlope": {"Sev": 0, "Mod": 1, "Gtl": 2},
    "LotShape": {"IR3": 0, "IR2": 1, "IR1": 2, "Reg": 3},
    "CentralAir": {"N": 0, "Y": 1},
}
# Numeric codes that name categories, not quantities.
CODES = ["MSSubClass"]
# De Cock, who compiled the data, names these partial sales of huge houses as outliers.
# They are trained on like any row and always scored; this rule only labels the figure
# reported without them.
OUTLIER_AREA, OUTLIER_PRICE = 4000, 300_000


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed, complete-where-meaningful features: the NA conventions applied."""
    frame = frame.copy()
    for column in NA_MEANS_NONE:
        if column in frame:
            frame[column] = frame[column].fillna("None").replace({"NA": "None"})
    for column in ZERO_WHEN_ABSENT:
        if column in frame:
            frame[column] = frame[column].fillna(0.0)
    if "GarageYrBlt" in frame:
        # No garage: the year the house was built keeps the column monotone in age.
        frame["GarageYrBlt"] = frame["GarageYrBlt"].fillna(frame["YearBuilt"])
    for column in CODES:
        if column in frame:
            frame[column] = "C" + frame[column].astype(str)
    for column in categorical_columns(frame):
        frame[column] = frame[column].replace({"NA": np.nan})
    return frame


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in NUMERIC and c not in ("Id", "SalePrice")
            and (frame[c].dtype == object or str(frame[c].dtype) in ("string", "str"))]


def engineer(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ordinal scores and engineered totals; the input must be `clean`ed."""
    frame = frame.copy()
    for column, scale in ORDINAL.items():
        if column in frame:
            frame[column + "Score"] = frame[column].map(scale).astype(float)
    frame["TotalSF"] = frame["TotalBsmtSF"] + frame["1stFlrSF"] + frame["2ndFlrSF"]
    frame["TotalFinishedSF"] = frame["BsmtFinSF1"] + frame["BsmtFinSF2"] + frame["1stFlrSF"] + frame["2ndFlrSF"]
    frame["TotalBath"] = frame["FullBath"] + 0.5 * frame["HalfBath"] + frame["BsmtFullBath"] + 0.5 * frame["BsmtHalfBath"]
    frame["TotalPorchSF"] = frame[["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]].sum(axis=1)
    frame["Age"] = (frame["YrSold"] - frame["YearBuilt"]).clip(lower=0)
    frame["RemodelAge"] = (frame["YrSold"] - frame["YearRemodAdd"]).clip(lower=0)
    frame["Remodelled"] = (frame["YearRemodAdd"] != frame["YearBuilt"]).astype(float)
    frame["SoldNew"] = (frame["YrSold"] == frame["YearBuilt"]).astype(float)
    frame["QualityArea"] = frame["OverallQual"] * frame["GrLivArea"]
    frame["QualityTotalSF"] = frame["OverallQual"] * frame["TotalSF"]
    frame["OverallScore"] = frame["OverallQual"] * frame["OverallCond"]
    frame["LotFrontageMissing"] = frame["LotFrontage"].isna().astype(float)
    for thing, column in (("Pool", "PoolArea"), ("SecondFloor", "2ndFlrSF"), ("Garage", "GarageArea"),
                          ("Basement", "TotalBsmtSF"), ("Fireplace", "Fireplaces")):
        frame["Has" + thing] = (frame[column] > 0).astype(float)
    frame["SoldMonthIndex"] = (frame["YrSold"] - 2006) * 12 + frame["MoSold"]
    # A blank month is a missing category (imputed downstream), not a crash.
    frame["MonthSold"] = ("M" + frame["MoSold"].astype("Int64").astype("string")).astype(object).where(frame["MoSold"].notna(), np.nan)
    return frame


def features(frame: pd.DataFrame, engineered: bool = True) -> pd.DataFrame:
    """Raw platform rows -> the model's feature frame (Id and SalePrice removed); without
    `engineered`, the cleaned raw columns only."""
    cleaned = clean(frame)
    return (engineer(cleaned) if engineered else cleaned).drop(columns=["Id", "SalePrice"], errors="ignore")


def is_outlier(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["GrLivArea"] > OUTLIER_AREA) & (frame["SalePrice"] < OUTLIER_PRICE)).to_numpy()


class Winsorize(BaseEstimator, TransformerMixin):
    """Clip each column to its [1 - quantile, quantile] range measured at fit.

    A linear model extrapolates without limit: a house twice the size of any other in
    training gets a price no market pays (the huge partial sales). Clipping the inputs
    to the training range's tails bounds that. Hand-written: scikit-learn has no
    fitted quantile clipper."""

    def __init__(self, quantile: float = 0.995):
        self.quantile = quantile

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.low_ = np.nanquantile(X, 1 - self.quantile, axis=0)
        self.high_ = np.nanquantile(X, self.quantile, axis=0)
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=float), self.low_, self.high_)


class SkewedLog(BaseEstimator, TransformerMixin):
    """log1p of the non-negative columns whose skew (measured at fit) exceeds a threshold."""

    def __init__(self, threshold: float = 0.75):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        skew = pd.DataFrame(X).skew().to_numpy()
        self.columns_ = np.flatnonzero((np.abs(skew) > self.threshold) & (np.nanmin(X, axis=0) >= 0))
        return self

    def transform(self, X):
        X = np.array(X, dtype=float, copy=True)
        X[:, self.columns_] = np.log1p(np.clip(X[:, self.columns_], 0, None))
        return X


def linear_preprocessor(frame: pd.DataFrame, quantile: float = 0.995):
    """Imputation, clipped tails, skew logs, one-hot categories and robust scaling for linear models."""
    categorical = categorical_columns(frame)
    numeric = [c for c in frame.columns if c not in categorical]
    columns = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), Winsorize(quantile), SkewedLog()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="constant", fill_value="Missing"),
                                      OneHotEncoder(handle_unknown="ignore", min_frequency=3, sparse_output=False)), categorical),
    ])
    return make_pipeline(columns, RobustScaler())
