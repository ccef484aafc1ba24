"""The registry's entries: what `compete list` prints and where each class lives, read
without importing any competition (like pip's command table), so listing loads no model
library. tests/test_contract.py checks that every field agrees with the class.

Adding a competition is adding its package and one entry here (`compete new NAME
--platform P` writes both). A class is constructed with no arguments; the GENERIC entry
("PLATFORM:SLUG"), which serves kaggle:titanic, zindi:SLUG, drivendata:SLUG, is
constructed as `cls(platform=PLATFORM, slug=SLUG, metric=METRIC)` (common/registry.py).
"""
from common.registry import GENERIC, Entry, Registry

REGISTRY = Registry([
    Entry("house-prices", "competitions.house_prices:HousePrices", "kaggle", "rmsle",
          "Kaggle, tabular regression of sale prices",
          data_files=("train.csv", "test.csv", "sample_submission.csv"), sources=("fetch", "download")),
    Entry("uberct", "competitions.uberct:UberCapeTown", "zindi", "f1",
          "Zindi, road incidents per segment and hour in Cape Town, F1",
          data_files=("train.csv", "road_segments.zip", "SampleSubmission.csv"), sources=("synth", "download")),
    Entry("birdcall", "competitions.birdcall:Birdcall", "zindi", "log_loss",
          "Zindi, bird species from field recordings (audio, 40 classes)",
          data_files=("Train.csv", "SampleSubmission.csv"), sources=("synth", "download")),
    Entry("serengeti", "competitions.serengeti:Serengeti", "drivendata", "mean_binary_log_loss",
          "DrivenData, camera-trap multi-label images, code submission",
          data_files=("train_metadata.csv", "train_labels.csv"), sources=("synth", "download")),
    Entry(GENERIC, "competitions.tabular:Tabular", None, None,
          "any table, free-text, image or audio competition: format read from its files, metric from --metric or guessed",
          sources=("synth", "download")),
    # `compete new` adds its entry above this line
])

names, example_names = REGISTRY.names, REGISTRY.example_names
