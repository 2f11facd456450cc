"""Box derivation from CCP label maps: synthetic maps plus real photos."""

import numpy as np
import pytest

from training.data import ccp

NAMES = ["null", "skin", "hair", "coat", "t-shirt", "jeans", "shoes", "blouse", "sweater", "necklace"]
COAT, TSHIRT, JEANS, SHOES, BLOUSE, SWEATER, NECKLACE = 3, 4, 5, 6, 7, 8, 9


def _map() -> np.ndarray:
    labels = np.zeros((200, 100), dtype=np.uint8)
    labels[20:40, 40:60] = 1  # face skin
    return labels


def test_open_coat_split_by_the_top_makes_one_outer_box_and_one_top_box():
    labels = _map()
    labels[50:120, 20:40] = COAT  # left panel
    labels[50:120, 60:80] = COAT  # right panel
    labels[50:110, 40:60] = TSHIRT  # the top between them
    regions = {r.group: r for r in ccp.regions_from_labels(labels, NAMES, min_component_px=20,
                                                           min_group_px=50)}
    assert set(regions) == {"outer", "top"}
    assert regions["outer"].box == pytest.approx((0.20, 0.25, 0.80, 0.60))
    assert regions["outer"].type == "coat"
    assert regions["top"].box == pytest.approx((0.40, 0.25, 0.60, 0.55))


def test_layered_tops_make_one_top_typed_by_the_larger_label():
    labels = _map()
    labels[50:110, 30:70] = SWEATER
    labels[100:115, 30:70] = BLOUSE  # hem of the blouse under it
    (top,) = ccp.regions_from_labels(labels, NAMES, min_component_px=20, min_group_px=50)
    assert top.group == "top" and top.type == "sweater"
    assert top.box == pytest.approx((0.30, 0.25, 0.70, 0.575))


def test_specks_do_not_stretch_a_box_and_tiny_groups_are_dropped():
    labels = _map()
    labels[120:180, 30:70] = JEANS
    labels[5:7, 5:7] = JEANS  # 4 stray pixels far away
    labels[190:192, 90:92] = SHOES  # a 4-pixel "shoe"
    labels[45:47, 45:55] = NECKLACE  # not a catalog garment
    regions = ccp.regions_from_labels(labels, NAMES, min_component_px=20, min_group_px=50)
    assert [r.group for r in regions] == ["bottom"]
    assert regions[0].box == pytest.approx((0.30, 0.60, 0.70, 0.90))


def test_two_shoes_make_one_pair_box():
    labels = _map()
    labels[180:195, 20:35] = SHOES
    labels[180:195, 65:80] = SHOES
    (shoes,) = ccp.regions_from_labels(labels, NAMES, min_component_px=20, min_group_px=50)
    assert shoes.box == pytest.approx((0.20, 0.90, 0.80, 0.975))


def test_color_comes_from_masked_pixels_only():
    labels = _map()
    labels[50:120, 20:80] = COAT
    rgb = np.full((200, 100, 3), (250, 250, 250), dtype=np.uint8)  # white background
    rgb[50:120, 20:80] = (200, 30, 40)  # a red coat
    (coat,) = ccp.regions_from_labels(labels, NAMES, rgb, min_component_px=20, min_group_px=50)
    assert coat.color == "red"


def test_real_photos_give_plausible_regions(data_dir):
    names = ccp.read_label_names(data_dir / "ccp")
    assert len(names) == 59 and names[0] == "null"
    mats = sorted((data_dir / "ccp" / "annotations" / "pixel-level").glob("*.mat"))[:8]
    for mat in mats:
        photo = data_dir / "ccp" / "photos" / f"{mat.stem}.jpg"
        regions = ccp.photo_regions(photo, mat, names)
        assert regions, mat
        groups = [r.group for r in regions]
        assert len(groups) == len(set(groups))
        for r in regions:
            x0, y0, x1, y1 = r.box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_split_is_stable_and_about_fifteen_percent():
    ids = [f"{i:04d}" for i in range(1, 1005)]
    val = [i for i in ids if ccp.ccp_split(i) == "validation"]
    assert 0.10 < len(val) / len(ids) < 0.20
    assert val == [i for i in ids if ccp.ccp_split(i) == "validation"]
