"""The training recipe: one object from the command line to the bundle's metadata and back."""

import argparse
from pathlib import Path

from detector.ml.inference.bundle import read_metadata
from detector.ml.training import recipe as recipes
from detector.ml.training.recipe import Recipe
from tests.conftest import ROOT

VERSION_1 = ROOT / "ml_models" / "faces-effnetlite0-v1"  # saved by the code before Recipe


def parse(*argv):
    parser = recipes.add_arguments(argparse.ArgumentParser())
    return recipes.from_options(vars(parser.parse_args(argv)))


def test_the_command_line_gives_the_recipe_and_says_what_was_given():
    recipe, given = parse(
        "--out", "/tmp/b", "--model-version", "2.0.0", "--dataset", "a", "--dataset", "b", "--lr", "1e-4", "--bf16"
    )
    assert recipe.datasets == (Path("a"), Path("b")) and recipe.out == Path("/tmp/b") and recipe.version == "2.0.0"
    assert recipe.lr == 1e-4 and recipe.bf16 and recipe.epochs == Recipe().epochs
    assert given == {"datasets", "out", "version", "lr", "bf16"}
    recipe, _ = parse("--no-test-time-flip", "--limit", "5")
    assert recipe.test_time_flip is False and recipe.limit == 5
    assert parse()[0] == Recipe()


def test_what_is_saved_leaves_out_machine_paths_and_run_settings(tmp_path):
    recipe = Recipe(datasets=(tmp_path / "ffpp",), out=tmp_path / "b", workers=3, cache_dir=tmp_path, version="x")
    saved = recipe.saved()
    assert saved["datasets"] == ["ffpp"] and saved["init_from"] is None
    assert not {"out", "workers", "cache_dir", "version"} & set(saved)
    assert Recipe(init_from=tmp_path / "faces-v1").saved("1.4.0")["init_from"] == "faces-v1 1.4.0 (its weights)"


def test_a_continued_stage_takes_the_shipped_bundles_older_recipe_keys():
    earlier = read_metadata(VERSION_1).training["recipe"]
    assert "epochs_finetune" in earlier and "lr_finetune" in earlier  # saved by the code before Recipe
    recipe = Recipe(epochs=5).continuing(earlier, given={"epochs"})
    assert recipe.epochs == 5  # given on the command line: kept
    assert recipe.lr == earlier["lr_finetune"] and recipe.first_trained_block == earlier["first_trained_block"]
    assert recipe.augment_copies == earlier["augment_copies"] and recipe.seed == earlier["seed"]
    assert recipe.init_from is None  # where the earlier stage started is its own business


def test_a_saved_recipe_reads_back_whole(tmp_path):
    recipe = Recipe(epochs=2, lr=1e-3, mask_weight=0.0, self_blend_share=0.3, datasets=(tmp_path / "faces",))
    assert Recipe().continuing(recipe.saved(), given=set()) == Recipe(
        epochs=2, lr=1e-3, mask_weight=0.0, self_blend_share=0.3
    )


def test_unknown_keys_of_an_earlier_recipe_are_reported_and_dropped(caplog):
    assert Recipe.from_saved({"epochs": 2, "warp_drive": 9}) == {"epochs": 2}
    assert "warp_drive" in caplog.text


def test_a_recipe_with_several_datasets_describes_itself_as_json(tmp_path):
    described = recipes.describe(Recipe(datasets=(tmp_path / "a", tmp_path / "b"), init_from=tmp_path / "c"))
    assert described["datasets"] == [str(tmp_path / "a"), str(tmp_path / "b")] and described["init_from"].endswith("c")


def test_a_left_out_source_and_pseudo_fakes_only_come_from_the_command_line_and_read_back():
    recipe, given = parse("--exclude-source", "ffpp_faceswap", "--pseudo-fakes-only", "--landmark-masks")
    assert recipe.exclude_sources == ("ffpp_faceswap",) and recipe.pseudo_fakes_only and recipe.landmark_masks
    assert Recipe().continuing(recipe.saved(), given=set()).exclude_sources == ("ffpp_faceswap",)


def test_the_epoch_can_be_chosen_on_one_kind_of_fake():
    recipe, _ = parse("--choose-on-kind", "faceswap")
    assert recipe.choose_on_kinds == ("faceswap",) and recipe.saved()["choose_on_kinds"] == ["faceswap"]
    assert Recipe().continuing(recipe.saved(), given=set()).choose_on_kinds == ("faceswap",)


def test_datasets_are_named_by_their_place_in_or_beside_the_repository_not_by_a_machines_path():
    from detector.ml.training.recipe import dataset_name

    assert dataset_name(ROOT / ".cache" / "datasets" / "ffpp") == ".cache/datasets/ffpp"
    assert dataset_name(ROOT.parent / "shared" / "datasets" / "faces") == "shared/datasets/faces"


def test_a_shared_folder_that_is_a_link_still_names_its_datasets_by_their_place(tmp_path, monkeypatch):
    from detector.ml.training import recipe as recipes

    elsewhere = tmp_path / "disk" / "team-data"
    (elsewhere / "datasets" / "faces").mkdir(parents=True)
    (tmp_path / "work" / "repo").mkdir(parents=True)
    (tmp_path / "work" / "shared").symlink_to(elsewhere)
    monkeypatch.setattr(recipes, "REPO_PARENT", tmp_path / "work")
    monkeypatch.setattr(recipes, "REPO_NAME", "repo")
    monkeypatch.chdir(tmp_path / "work" / "repo")
    assert recipes.dataset_name("../shared/datasets/faces") == "shared/datasets/faces"
    assert recipes.dataset_name(elsewhere / "datasets" / "faces") == "shared/datasets/faces"  # the link followed
    assert recipes.dataset_name(tmp_path / "disk") == "disk"
