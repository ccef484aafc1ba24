"""The registry's entries: name -> "module:Class", read without importing any of them
(like pip's command table), so listing competitions loads no model library.

Adding a competition is adding its package and one line here. The class is
constructed with no arguments; the PLATFORM_ENTRY class, which serves every
`PLATFORM:SLUG` name (kaggle:titanic, zindi:SLUG, drivendata:SLUG), is constructed as
`cls(platform=PLATFORM, slug=SLUG)` (see common/competition.py); its line here is
`"tabular": "competitions.tabular:Tabular"`.
"""

ENTRIES: dict[str, str] = {
    "house-prices": "competitions.house_prices:HousePrices",
    "uberct": "competitions.uberct:UberCapeTown",
    "birdcall": "competitions.birdcall:Birdcall",
    "serengeti": "competitions.serengeti:Serengeti",
    "tabular": "competitions.tabular:Tabular",
}

PLATFORM_ENTRY = "tabular"
