import numpy as np
import pytest

from eyepic import colors, taxonomy


def test_every_source_label_maps_to_a_known_type():
    for mapping in (taxonomy.CLOTHING_SMALL_TYPES, taxonomy.CCP_TYPES):
        for type_name in mapping.values():
            assert taxonomy.garment_type(type_name).group in taxonomy.GROUP_NAMES


def test_seed_groups_and_korean_names():
    assert taxonomy.APPAREL_GROUPS == ("onepiece", "outer", "top", "bottom")
    assert [taxonomy.group(g).ko for g in taxonomy.APPAREL_GROUPS] == ["원피스", "아우터", "상의", "하의"]


@pytest.mark.parametrize(
    "label,group",
    [("blouse", "top"), ("t-shirt", "top"), ("sweater", "top"), ("coat", "outer"), ("jacket", "outer"),
     ("blazer", "outer"), ("cardigan", "outer"), ("jeans", "bottom"), ("pants", "bottom"),
     ("shorts", "bottom"), ("skirt", "bottom"), ("leggings", "bottom"), ("dress", "onepiece"),
     ("romper", "onepiece"), ("sneakers", "shoes"), ("purse", "bag")],
)
def test_ccp_labels_land_in_the_seed_groups(label, group):
    assert taxonomy.group_of(taxonomy.CCP_TYPES[label]) == group


def test_non_garment_labels_are_ignored():
    for label in ("skin", "hair", "null", "necklace", "socks", "tights"):
        assert label not in taxonomy.CCP_TYPES


def test_unknown_type_names_the_valid_ones():
    with pytest.raises(KeyError, match="one of"):
        taxonomy.garment_type("poncho")


def test_palette_has_ten_named_colors_with_korean_names():
    assert len(colors.PALETTE) == 10
    assert all(c.ko for c in colors.PALETTE)


@pytest.mark.parametrize(
    "rgb,name",
    [((5, 5, 5), "black"), ((250, 250, 250), "white"), ((128, 128, 128), "gray"), ((200, 30, 40), "red"),
     ((255, 182, 193), "pink"), ((30, 60, 160), "blue"), ((20, 30, 80), "blue"), ((34, 139, 34), "green"),
     ((139, 69, 19), "brown"), ((240, 220, 180), "beige"), ((250, 210, 20), "yellow"),
     # the cases nearest-prototype naming got wrong on CCP: shaded white, light blue, mint, denim
     ((215, 215, 210), "white"), ((173, 216, 230), "blue"), ((170, 230, 200), "green"), ((80, 100, 140), "blue")],
)
def test_dominant_color_names_plain_swatches(rgb, name):
    assert colors.dominant_color(np.full((50, 3), rgb, dtype=np.uint8)) == name


def test_dominant_color_is_the_majority_not_the_mean():
    pixels = np.array([(200, 30, 40)] * 60 + [(30, 60, 160)] * 40, dtype=np.uint8)
    # The mean of red and blue is a purple-ish color; the majority is red.
    assert colors.dominant_color(pixels) == "red"


def test_no_pixels_is_an_error():
    with pytest.raises(ValueError):
        colors.dominant_color(np.zeros((0, 3), dtype=np.uint8))


def test_fuse_color_is_a_normalised_product_of_head_and_pixels():
    from eyepic.colors import fuse_color

    names = list(colors.COLOR_NAMES)
    head = np.full(len(names), 0.01)
    head[names.index("blue")], head[names.index("red")] = 0.6, 0.31
    shares = np.zeros(len(names))
    shares[names.index("red")] = 1.0
    np.testing.assert_array_equal(fuse_color(head, shares, 0.0), head)
    fused = fuse_color(np.stack([head, head]), np.stack([shares, shares]), 1.0)
    assert fused.shape == (2, len(names)) and np.allclose(fused.sum(axis=1), 1.0)
    assert names[int(fused[0].argmax())] == "red"
    expected = head * (shares + 0.01)
    np.testing.assert_allclose(fused[0], expected / expected.sum(), rtol=1e-4)


def test_name_pixels_matches_the_nearest_prototype_by_brute_force():
    """The running-minimum search names every pixel as the (N, prototypes) distance argmin did."""
    import numpy as np

    from eyepic.colors import _PROTOTYPE_COLOR, _PROTOTYPES, CHROMA_THRESHOLD, name_pixels, srgb_to_lab

    pixels = np.random.default_rng(7).integers(0, 256, (20000, 3), dtype=np.uint8)
    lab = srgb_to_lab(pixels)
    nearest = _PROTOTYPE_COLOR[((lab[:, None, :] - _PROTOTYPES[None, :, :]) ** 2).sum(-1).argmin(axis=1)]
    hued = np.hypot(lab[:, 1], lab[:, 2]) >= CHROMA_THRESHOLD
    assert hued.sum() > 1000
    assert (name_pixels(pixels)[hued] == nearest[hued]).all()


def test_the_color_table_names_every_pixel_as_the_exact_naming():
    """The shipped table (what searches use) is all 2**24 exact answers, not a stale copy."""
    from eyepic.color_table import TABLE_FILE, build_table, read_table
    from eyepic.colors import name_pixels, name_pixels_exact

    np.testing.assert_array_equal(read_table(TABLE_FILE), build_table(name_pixels_exact))
    pixels = np.random.default_rng(11).integers(0, 256, (50000, 3), dtype=np.uint8)
    np.testing.assert_array_equal(name_pixels(pixels), name_pixels_exact(pixels))


@pytest.mark.parametrize("content", [None, b"not zlib", "short", "stale"])
def test_a_missing_or_stale_color_table_is_rebuilt_with_a_warning(tmp_path, caplog, content):
    import zlib

    from eyepic.color_table import SIZE, load_table, unpacked, write_table

    def name(pixels):  # a cheap naming: red channel above half
        return (np.asarray(pixels)[:, 0] > 127).astype(np.uint8)

    path = tmp_path / "table.zlib"
    if content == "short":
        path.write_bytes(zlib.compress(b"\x00" * 1000))
    elif content == "stale":
        write_table(np.zeros(SIZE, np.uint8), path)
    elif content is not None:
        path.write_bytes(content)
    with caplog.at_level("WARNING", logger="eyepic.color_table"):
        table = load_table(name, path)
    assert "rebuilding it in memory" in caplog.text
    values = np.array([0, 0x7F0000, 0x800000, 0xFFFFFF, 0x80FF00])
    np.testing.assert_array_equal(table[values], name(unpacked(values)))


def test_a_fresh_color_table_file_loads_without_a_rebuild(tmp_path, caplog):
    from eyepic.color_table import build_table, load_table, write_table

    def name(pixels):
        return (np.asarray(pixels)[:, 2] > 200).astype(np.uint8)

    path = write_table(build_table(name), tmp_path / "table.zlib")
    with caplog.at_level("WARNING", logger="eyepic.color_table"):
        table = load_table(name, path)
    assert caplog.text == "" and not table.flags.writeable
