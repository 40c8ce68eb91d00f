"""A diffusion row through ``xprospect train / predict / export``, shrunk to seconds."""

import os

import nibabel as nib
import numpy as np
import pytest

from pipelines.cli import main
from tests.helpers import TINY_ROW, read_json
from xprospect_tf.data.prepared import load_case

DIFFUSION_TINY = [*TINY_ROW, "--set", "diffusion.timesteps=50", "--set", "diffusion.sample_steps=3",
                  "--set", "embed_dim=8", "--set", "encoder_filters=2", "--set", "discriminator_filters=2"]


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory, phantom_dataset):
    out = str(tmp_path_factory.mktemp("runs") / "diffusion-frontal")
    assert main(["train", "--row", "Diffusion-Frontal", "--out", out, "--data", phantom_dataset,
                 *DIFFUSION_TINY]) == 0
    return out


def test_train_writes_a_diffusion_run_with_its_loss_terms_and_timing(diffusion_run):
    res = read_json(os.path.join(diffusion_run, "results.json"))
    assert res["optimizer"] == "adamw" and res["loss"] == "mae" and res["parameters"] > 0
    assert res["predict_time_s"] > 0 and len(res["per_case"]) == 2
    with open(os.path.join(diffusion_run, "history.csv")) as f:
        header = f.readline().strip().split(",")
    assert {"l1", "perceptual", "adversarial", "discriminator", "val_l1"} <= set(header)


def _pngs(tmp_path, data_dir):
    from PIL import Image

    c = load_case(data_dir, "phantom-0000")
    paths = {}
    for view in ("ap", "lateral"):
        paths[view] = str(tmp_path / f"{view}.png")
        Image.fromarray((c[view] * 255).astype(np.uint8)).save(paths[view])
    return paths


def test_predict_samples_by_seed_and_writes_the_spread_of_several_samples(diffusion_run, phantom_dataset,
                                                                          tmp_path):
    paths = _pngs(tmp_path, phantom_dataset)
    out = {k: str(tmp_path / f"{k}.nii.gz") for k in ("a", "b", "c", "mean")}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):  # a frontal-only row needs no --lateral
        assert main(["predict", diffusion_run, "--frontal", paths["ap"], "--out", out[name],
                     "--seed", str(seed), "--steps", "2"]) == 0
    a, b, c = (nib.load(out[k]).get_fdata() for k in "abc")
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert main(["predict", diffusion_run, "--frontal", paths["ap"], "--out", out["mean"], "--seed", "1",
                 "--steps", "2", "--samples", "2"]) == 0
    mean = nib.load(out["mean"]).get_fdata()
    std = nib.load(str(tmp_path / "mean_std.nii.gz")).get_fdata()
    # seeds 1 and 2 are the two samples: their mean and spread, recomputed from the single samples
    np.testing.assert_allclose(mean, (a + c) / 2, atol=0.1)  # HU written as float32
    np.testing.assert_allclose(std, np.abs(a - c) / 2, atol=0.1)
    assert std.max() > 0


def test_predict_refuses_sampling_options_for_a_deterministic_row(tiny_run, phantom_dataset, tmp_path, capsys):
    paths = _pngs(tmp_path, phantom_dataset)
    assert main(["predict", tiny_run, "--frontal", paths["ap"], "--lateral", paths["lateral"],
                 "--out", str(tmp_path / "x.nii.gz"), "--samples", "3"]) == 2
    assert "diffusion rows" in capsys.readouterr().err
    assert main(["predict", tiny_run, "--frontal", paths["ap"], "--out", str(tmp_path / "y.nii.gz")]) == 2
    assert "--lateral" in capsys.readouterr().err
    assert not os.listdir(tmp_path) or not any(n.endswith(".nii.gz") for n in os.listdir(tmp_path))


def test_export_of_a_diffusion_run_serves_its_sampler(diffusion_run, phantom_dataset, tmp_path):
    tf = pytest.importorskip("tensorflow")
    from xprospect_tf.export import load_keras_model

    export_dir = str(tmp_path / "export")
    assert main(["export", diffusion_run, "--out", export_dir]) == 0
    served = tf.saved_model.load(os.path.join(export_dir, "saved_model")).signatures["serving_default"]
    c = load_case(phantom_dataset, "phantom-0000")
    frontal = c["ap"][None, ..., None].astype("float32")
    noise = np.random.default_rng(0).standard_normal((1, 16, 16, 16, 1)).astype("float32")
    got = served(frontal=tf.constant(frontal), noise=tf.constant(noise))["ct"].numpy()
    model = load_keras_model(os.path.join(export_dir, "model.keras"))
    expected = model.sample({"frontal": frontal}, eta=0.0, noise=noise)
    assert np.abs(got - expected).mean() < 1e-4


def test_stages_then_lora_fine_tuning_from_a_finished_run(diffusion_run, phantom_dataset, tmp_path, capsys):
    import keras

    from xprospect_tf.export import load_keras_model

    staged = str(tmp_path / "staged")
    assert main(["train", "--row", "Diffusion-Frontal", "--out", staged, "--data", phantom_dataset,
                 *DIFFUSION_TINY, "--set", "diffusion.unconditional_epochs=1",
                 "--set", "diffusion.pretrain_epochs=1"]) == 0
    with open(os.path.join(staged, "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().split()[1:]] == ["0", "1", "2"]  # 1 + 1 + train.epochs

    tuned = str(tmp_path / "tuned")
    assert main(["train", "--row", "Diffusion-Frontal", "--out", tuned, "--data", phantom_dataset,
                 *DIFFUSION_TINY, "--set", f"train.init_from={diffusion_run}", "--set", "diffusion.lora_rank=2"]) == 0
    base = load_keras_model(os.path.join(diffusion_run, "model.keras"))
    model = load_keras_model(os.path.join(tuned, "model.keras"))
    convs = [layer for layer in model.denoiser.layers if isinstance(layer, keras.layers.Conv3D)]
    assert convs and all(layer.lora_enabled for layer in convs)
    deltas = []
    for layer in convs:  # Keras saves kernel + LoRA update: the update has rank <= 2
        delta = np.array(layer.kernel) - np.array(base.denoiser.get_layer(layer.name).kernel)
        deltas.append(np.abs(delta).max())
        assert np.linalg.matrix_rank(delta.reshape(-1, delta.shape[-1]), tol=1e-6) <= 2
    assert max(deltas) > 0  # the adapters trained
    for a, b in zip(base.encoder.weights, model.encoder.weights):  # the encoder stays frozen
        np.testing.assert_array_equal(np.array(a), np.array(b))

    assert main(["train", "--row", "Diffusion-Frontal", "--out", str(tmp_path / "bad"), "--data", phantom_dataset,
                 *DIFFUSION_TINY, "--set", f"train.init_from={tmp_path / 'nothing'}"]) == 2
    assert "train.init_from" in capsys.readouterr().err


def test_a_latent_mode_run_trains_its_autoencoder_first_and_predicts(phantom_dataset, tmp_path):
    from xprospect_tf.export import load_keras_model

    out = str(tmp_path / "latent")
    assert main(["train", "--row", "Diffusion-Biplanar", "--out", out, "--data", phantom_dataset, *DIFFUSION_TINY,
                 "--set", "diffusion.latent=true", "--set", "diffusion.autoencoder_epochs=2",
                 "--set", "diffusion.residual_of=null"]) == 0  # residual mode is pixel space only
    model = load_keras_model(os.path.join(out, "model.keras"))
    assert model.latent and model.grid == (16, 2, 2, 4) and float(model.latent_scale) != 1.0
    paths = _pngs(tmp_path, phantom_dataset)
    assert main(["predict", out, "--frontal", paths["ap"], "--lateral", paths["lateral"],
                 "--out", str(tmp_path / "ct.nii.gz"), "--steps", "2"]) == 0
    assert nib.load(str(tmp_path / "ct.nii.gz")).shape == (16, 16, 16)


def test_the_classification_term_needs_a_labelled_dataset(phantom_dataset, tmp_path, capsys):
    assert main(["train", "--row", "Diffusion-Frontal", "--out", str(tmp_path / "cls"), "--data", phantom_dataset,
                 *DIFFUSION_TINY, "--set", "diffusion.classification_weight=0.08"]) == 2
    assert "--findings" in capsys.readouterr().err


def test_a_residual_diffusion_row_trains_its_regressor_row_first_then_reuses_it(phantom_dataset, tmp_path):
    from xprospect_tf.export import load_keras_model

    out = str(tmp_path / "residual")
    args = ["train", "--row", "Diffusion-Biplanar", "--out", out, "--data", phantom_dataset, *DIFFUSION_TINY,
            "--set", "diffusion.residual_of=64-Dense"]
    assert main(args) == 0
    model = load_keras_model(os.path.join(out, "model.keras"))
    trained = load_keras_model(os.path.join(out, "64-dense", "model.keras"))  # the regressor row's own run
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(model.regressor.weights, trained.weights))
    paths = _pngs(tmp_path, phantom_dataset)
    assert main(["predict", out, "--frontal", paths["ap"], "--lateral", paths["lateral"],
                 "--out", str(tmp_path / "ct.nii.gz"), "--steps", "2"]) == 0
    regressor_file = os.path.join(out, "64-dense", "model.keras")
    written = os.stat(regressor_file).st_mtime_ns
    assert main([*args, "--retrain"]) == 0  # retrains the diffusion row, reuses the finished regressor run
    assert os.stat(regressor_file).st_mtime_ns == written


@pytest.mark.parametrize("row, setting, message", [
    ("Diffusion-Biplanar", "Mean volume", "a trained UNet row"),
    ("Diffusion-Biplanar", "No-such-row", "No-such-row"),
    ("Diffusion-Biplanar", "64-Dense-Styled-Inputs", "same inputs"),
    ("Diffusion-Frontal", "64-Dense", "views: biplanar"),
])
def test_a_residual_of_that_cannot_serve_is_refused(phantom_dataset, tmp_path, capsys, row, setting, message):
    assert main(["train", "--row", row, "--out", str(tmp_path / "r"), "--data", phantom_dataset, *DIFFUSION_TINY,
                 "--set", f"diffusion.residual_of={setting}"]) == 2
    err = capsys.readouterr().err
    assert "diffusion.residual_of" in err and message in err and "Traceback" not in err
