"""Data folder handling: missing datasets are named with where to put them."""

import pytest

from training.data import download
from training.data.clothing_small import DataMissing, read_clothing_small, read_folder_per_class


def test_present_data_needs_nothing(data_dir):
    assert download.missing_datasets(data_dir) == []
    download.ensure_data(data_dir)  # no network touched


def test_missing_data_offline_says_where_to_put_it(tmp_path, monkeypatch):
    # A closed loopback port: the download is refused at once, as offline.
    monkeypatch.setitem(download.SOURCES, "clothing-small", "http://127.0.0.1:9/clothing.zip")
    with pytest.raises(DataMissing) as info:
        download.ensure_data(tmp_path, timeout_s=2)
    message = str(info.value)
    assert "clothing-small" in message and str(tmp_path / "clothing-small") in message
    assert "EYEPIC_DATA_DIR" in message


def test_readers_keep_the_dataset_split(data_dir):
    samples = read_clothing_small(data_dir / "clothing-small")
    splits = {s.split for s in samples}
    assert splits == {"train", "validation"}
    train_keys = {s.key for s in samples if s.split == "train"}
    assert not train_keys & {s.key for s in samples if s.split == "validation"}
    assert {s.type for s in samples} >= {"dress", "jacket", "t-shirt", "pants", "shoes", "hat"}


def test_any_folder_per_class_tree_reads(data_dir):
    samples = read_folder_per_class(data_dir / "clothing-small" / "validation")
    assert len(samples) > 300 and all(s.split == "validation" for s in samples)
    with pytest.raises(DataMissing):
        read_clothing_small(data_dir / "nope")


def test_calibration_photos_are_whole_ccp_train_photos_and_stay_put(tiny_samples):
    from training.data.samples import calibration_part

    rest, held = calibration_part(tiny_samples, 0.5)
    assert held and len(rest) + len(held) == len(tiny_samples)
    assert all(s.source == "ccp" and s.split == "train" for s in held)
    assert not {s.path for s in held} & {s.path for s in rest}  # a photo's garments stay together
    assert calibration_part(list(reversed(tiny_samples)), 0.5)[1] == list(reversed(held))  # by hash, not order
    smaller = calibration_part(tiny_samples, 0.25)[1]
    assert set(smaller) <= set(held)  # growing the fraction only adds photos
    assert calibration_part(tiny_samples, 0.0) == (list(tiny_samples), [])
