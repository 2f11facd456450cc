"""The Kibana NDJSON parses, hangs together, and names only fields the mapping has.

Why: saved objects are edited by hand and break silently (Kibana shows an empty
panel), so every field they reference is checked against the mapping data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from eyepic.settings import Settings
from indexer.es_schema import mapping

NDJSON = Path(__file__).resolve().parents[1] / "k8s" / "base" / "kibana" / "eyepic-saved-objects.ndjson"
JSON_ATTRIBUTES = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON", "sourceFilters", "fieldFormatMap")


def objects() -> list[dict]:
    lines = [line for line in NDJSON.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def mapped_fields(properties: dict, prefix: str = "") -> set[str]:
    names = set()
    for name, spec in properties.items():
        names.add(prefix + name)
        names |= mapped_fields(spec.get("fields", {}), prefix + name + ".")
        names |= mapped_fields(spec.get("properties", {}), prefix + name + ".")
    return names


def referenced_fields(obj: dict) -> Iterator[str]:
    attrs = obj["attributes"]
    if obj["type"] == "index-pattern":
        yield attrs["timeFieldName"]
        yield from json.loads(attrs.get("fieldFormatMap", "{}"))
        yield from (f["value"] for f in json.loads(attrs.get("sourceFilters", "[]")))
    if obj["type"] == "visualization":
        for agg in json.loads(attrs["visState"])["aggs"]:
            if "field" in agg["params"]:
                yield agg["params"]["field"]
    if obj["type"] == "search":
        yield from attrs["columns"]
        yield from (field for field, _ in attrs["sort"])


def test_every_line_is_a_saved_object():
    objs = objects()
    assert {o["type"] for o in objs} == {"index-pattern", "visualization", "search", "dashboard"}
    ids = [o["id"] for o in objs]
    assert len(ids) == len(set(ids))
    for obj in objs:
        assert obj["attributes"]["title"]
        for key in JSON_ATTRIBUTES:
            if key in obj["attributes"]:
                json.loads(obj["attributes"][key])
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            json.loads(meta["searchSourceJSON"])


def test_references_resolve_inside_the_file():
    objs = objects()
    by_id = {(o["type"], o["id"]) for o in objs}
    for obj in objs:
        for ref in obj.get("references", []):
            assert (ref["type"], ref["id"]) in by_id, ref
        names = {r["name"] for r in obj.get("references", [])}
        source = json.loads(obj["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in names
        if obj["type"] == "dashboard":
            for panel in json.loads(obj["attributes"]["panelsJSON"]):
                assert panel["panelRefName"] in names


def test_dashboard_shows_group_color_shop_and_indexing_over_time():
    objs = {o["id"]: o for o in objects()}
    dashboard = objs["eyepic-catalog-overview"]
    shown = {r["id"] for r in dashboard["references"]}
    fields = {f for i in shown if objs[i]["type"] == "visualization" for f in referenced_fields(objs[i])}
    assert {"group", "color", "shop", "indexed_at"} <= fields
    assert any(objs[i]["type"] == "search" for i in shown)


def test_data_view_is_on_the_alias():
    (view,) = [o for o in objects() if o["type"] == "index-pattern"]
    assert view["attributes"]["title"] == Settings().index_name


@pytest.mark.parametrize("obj", objects(), ids=lambda o: o["id"])
def test_every_referenced_field_is_mapped(obj):
    known = mapped_fields(mapping(512)["properties"])
    for field in referenced_fields(obj):
        assert field in known, f"{obj['id']} uses {field!r}, which the mapping lacks"
