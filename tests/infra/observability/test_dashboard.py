"""The dashboard's JSON is a valid Dashboards API mosaic layout and shows what operators need:
request rate, latency percentiles, batch sizes, flagged rate per category, replicas, errors."""

from __future__ import annotations

import json
import re

import promql_parser

from infra.observability import metrics as m
from tests.infra.observability_queries import DASHBOARD, result_labels, selectors

PLOT_TYPES = {"LINE", "STACKED_AREA", "STACKED_BAR", "HEATMAP"}


def _document(plan: dict) -> dict:
    return json.loads(plan.one(DASHBOARD)["inputs"]["dashboardJson"])


def _tiles(plan: dict) -> list[dict]:
    return _document(plan)["mosaicLayout"]["tiles"]


def test_dashboard_is_a_mosaic_of_non_overlapping_tiles_inside_the_grid(plan: dict) -> None:
    document = _document(plan)
    assert set(document) == {"displayName", "labels", "mosaicLayout"}
    assert document["displayName"] == f"Moderation API ({plan.stack})"
    columns = document["mosaicLayout"]["columns"]
    assert columns == 48
    occupied: set[tuple[int, int]] = set()
    for tile in document["mosaicLayout"]["tiles"]:
        assert set(tile) == {"xPos", "yPos", "width", "height", "widget"}
        assert all(isinstance(tile[key], int) and tile[key] >= 0 for key in set(tile) - {"widget"})
        assert tile["xPos"] + tile["width"] <= columns
        cells = {
            (x, y)
            for x in range(tile["xPos"], tile["xPos"] + tile["width"])
            for y in range(tile["yPos"], tile["yPos"] + tile["height"])
        }
        assert not cells & occupied, f"{tile['widget']['title']} overlaps another tile"
        occupied |= cells


def test_every_chart_line_is_one_well_formed_query(plan: dict) -> None:
    for tile in _tiles(plan):
        widget = tile["widget"]
        assert widget["title"]
        assert set(widget) == {"title", "xyChart"}
        assert widget["xyChart"]["dataSets"]
        for data_set in widget["xyChart"]["dataSets"]:
            assert data_set["plotType"] in PLOT_TYPES
            assert data_set["targetAxis"] == "Y1"
            (kind,) = data_set["timeSeriesQuery"]
            query = data_set["timeSeriesQuery"][kind]
            if kind == "prometheusQuery":
                promql_parser.parse(query)
            else:
                assert kind == "timeSeriesFilter"
                assert query["filter"].startswith('metric.type="logging.googleapis.com/user/')
                assert query["aggregation"]["perSeriesAligner"] == "ALIGN_RATE"


def _metrics_by_tile(plan: dict) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for tile in _tiles(plan):
        names = used.setdefault(tile["widget"]["title"], set())
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"]
            if "prometheusQuery" in query:
                names |= {s.name for s in selectors(query["prometheusQuery"])}
            else:
                names.add(query["timeSeriesFilter"]["filter"])
    return used


def test_dashboard_covers_what_operators_need(plan: dict) -> None:
    tiles = _metrics_by_tile(plan)

    def tile_reading(*names: str) -> str:
        matches = [
            title
            for title, used in tiles.items()
            if all(any(name in u for u in used) for name in names)
        ]
        assert matches, f"no chart reads {names}"
        return matches[0]

    tile_reading(m.REQUESTS.name)  # request rate
    latency = tile_reading(m.HTTP_DURATION.series("_bucket"))
    tile_reading(m.BATCH_SIZE.series("_bucket"), m.BATCH_SIZE.series("_sum"))
    flagged = tile_reading(m.FLAGGED.name)
    tile_reading(m.HPA_CURRENT_REPLICAS.name, m.HPA_MAX_REPLICAS.name)  # replicas
    tile_reading(m.LB_5XX_LOG_METRIC)  # errors at the edge
    tile_reading(m.ARMOR_DENIALS_LOG_METRIC)
    quantiles = [
        d["timeSeriesQuery"]["prometheusQuery"].split(",")[0]
        for t in _tiles(plan)
        if t["widget"]["title"] == latency
        for d in t["widget"]["xyChart"]["dataSets"]
    ]
    assert quantiles == [f"histogram_quantile({q}" for q in ("0.5", "0.95", "0.99")]
    (flagged_query,) = [
        d["timeSeriesQuery"]["prometheusQuery"]
        for t in _tiles(plan)
        if t["widget"]["title"] == flagged
        for d in t["widget"]["xyChart"]["dataSets"]
    ]
    assert flagged_query.startswith("sum by (category) (rate(")


def test_dashboard_is_scoped_to_this_clusters_namespace(plan: dict) -> None:
    for tile in _tiles(plan):
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"].get("prometheusQuery")
            if query:
                assert query.count('cluster="moderation"') == query.count("{")
                assert query.count('namespace="moderation"') == query.count("{")


def test_every_legend_names_a_label_its_query_keeps(plan: dict) -> None:
    """A legend interpolating a label the query aggregated away would print the raw template."""
    for tile in _tiles(plan):
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            wanted = set(
                re.findall(r"\$\{metric\.labels\.(\w+)\}", data_set.get("legendTemplate", ""))
            )
            query = data_set["timeSeriesQuery"]
            if "prometheusQuery" in query:
                kept = result_labels(query["prometheusQuery"])
            else:
                kept = {
                    field.removeprefix("metric.label.")
                    for field in query["timeSeriesFilter"]["aggregation"]["groupByFields"]
                }
            assert wanted <= kept, f"{tile['widget']['title']}: legend {wanted}, query keeps {kept}"
