"""Dictionary analysis helpers and the load-or-build path notebooks 02 and 08 share."""

import numpy as np
import pytest

from reprolib import analysis, experiments


def test_label_distribution_per_group_single_and_multi_label():
    labels = np.array([0, 0, 1, 2, 2, 2])
    groups = np.array([0, 0, 0, 1, 1, 2])
    table = analysis.label_distribution_per_group(labels, groups, 4, 3)
    assert np.allclose(table[0], [2 / 3, 1 / 3, 0]) and np.allclose(table[1], [0, 0, 1])
    assert np.allclose(table[3], 0)  # an empty group stays empty
    multi = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]])
    table = analysis.label_distribution_per_group(multi, np.array([0, 0, 1]), 2, 3)
    assert np.allclose(table[0], [2 / 3, 1 / 3, 0]) and np.allclose(table[1], [0, 0, 1])


def test_label_dependence_is_zero_when_independent_and_large_when_determined():
    labels = np.tile([0, 1, 2], 10)
    assert analysis.label_dependence(labels, np.repeat([0, 1], 15)[np.argsort(np.tile([0, 1], 15))], 2, 3) < 0.1
    assert analysis.label_dependence(labels, labels, 3, 3) == pytest.approx(2 / 3)
    same = np.zeros(30, dtype=int)
    assert analysis.label_dependence(labels, same, 1, 3) == pytest.approx(0.0)


def test_cluster_purity_ignores_splitting_but_not_mixing():
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert analysis.cluster_purity(np.array([0, 0, 1, 1, 2, 2, 3, 3]), truth) == 1.0
    assert analysis.cluster_purity(np.array([0, 0, 0, 0, 0, 0, 0, 0]), truth) == 0.5


@pytest.fixture()
def tiny_caer(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path))
    return experiments.open_data("caer_s", synthetic_knobs={
        "sizes": {"train": 70, "val": 14, "test": 14, "test_ood": 14}, "image_size": 32},
        subject_size=16, context_size=24, image_size=24)


def test_dictionary_for_builds_once_then_loads(tiny_caer, tmp_path):
    first = experiments.dictionary_for(tiny_caer, 4)
    path = experiments.dictionary_path(tiny_caer, 4)
    assert path.exists() and path.parent == tmp_path / "dictionaries"
    assert first.size == 4 and abs(first.P.sum() - 1) < 1e-6
    assert first.provenance["split"] == "train" and first.provenance["samples"] == 70
    assert first.provenance["backbone"] == "ColourLayout" and first.provenance["dataset"] == "caer_s"
    mtime = path.stat().st_mtime_ns
    again = experiments.dictionary_for(tiny_caer, 4)
    assert path.stat().st_mtime_ns == mtime and np.array_equal(again.Z, first.Z)
    assert experiments.dictionary_path(tiny_caer, 8) != path


def test_unmasked_dictionary_is_built_from_the_whole_image_and_kept_apart(tiny_caer):
    masked = experiments.dictionary_for(tiny_caer, 4)
    unmasked = experiments.dictionary_for(tiny_caer, 4, view="image")
    assert experiments.dictionary_path(tiny_caer, 4, view="image") != experiments.dictionary_path(tiny_caer, 4)
    assert unmasked.provenance["subject"] == "not masked" and "subject" not in masked.provenance
    assert not np.allclose(unmasked.Z, masked.Z)
    with pytest.raises(ValueError, match="view must be"):
        experiments.dictionary_for(tiny_caer, 4, view="subject")


def test_true_scenes_come_from_the_sidecar_for_synthetic_data_only(tiny_caer):
    scenes = experiments.true_scenes(tiny_caer, "train")
    assert scenes.shape == (70,) and scenes.min() >= 0
    real = experiments.DataBundle("caer_s", tiny_caer.root, tiny_caer.splits, tiny_caer.class_names, False, False)
    assert experiments.true_scenes(real, "train") is None


def test_truth_records_follow_dataset_order_and_know_the_shortcut(tiny_caer):
    from reprolib.data.synthetic import favoured_emotion

    records = experiments.truth_records(tiny_caer, "train")
    assert len(records) == 70 and {"scene", "shown", "bystanders"} <= set(records[0])
    assert np.array_equal([r["scene"] for r in records], experiments.true_scenes(tiny_caer, "train"))
    labels = tiny_caer.targets("train").numpy()
    suggested = np.array([favoured_emotion(r["scene"], tiny_caer.num_classes) for r in records])
    assert (suggested == labels).mean() > 0.5  # the training bias (0.9 of scenes favour the label)
    suggestions = experiments.scene_suggestions(tiny_caer, "train")
    assert suggestions.shape == (70, tiny_caer.num_classes) and (suggestions.sum(1) == 1).all()
    assert np.array_equal(suggestions.argmax(1), suggested)


def test_scene_suggestions_on_emotic_style_data_mark_a_group_per_scene(tmp_path, monkeypatch):
    from reprolib.data.synthetic import emotic_favoured_scenes

    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path))
    d = experiments.open_data("emotic", synthetic_knobs={"sizes": {"train": 40, "val": 8, "test": 8, "test_ood": 8}},
                              subject_size=(24, 16), context_size=(24, 32), image_size=(24, 32))
    scenes, suggestions = experiments.true_scenes(d, "train"), experiments.scene_suggestions(d, "train")
    assert suggestions.shape == (len(scenes), 26) and suggestions.sum(1).min() >= 3  # 8 scenes: 3 or 4 categories each
    for scene, row in zip(scenes[:5], suggestions[:5]):
        assert all(row[c] == (scene in emotic_favoured_scenes(c, 8)) for c in range(26))
    labels = d.targets("train").numpy().astype(bool)
    assert (labels & suggestions).any(1).mean() > 0.5  # most people's scene favours one of their labels
