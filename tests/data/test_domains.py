"""Domain A / domain B image sources of the style-transfer CycleGAN."""

import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize

from tests.helpers import SIZE, write_png
from xprospect_tf.data.domains import (
    DOMAIN_B_FIRST_SEED,
    domain_a_images,
    domain_b_images,
)
from xprospect_tf.data.phantom import phantom_volume
from xprospect_tf.data.prepared import load_case, read_manifest
from xprospect_tf.data.projection import drr
from xprospect_tf.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def data_dir(phantom_datasets):
    """Four phantoms, one test case (shared, read-only)."""
    return phantom_datasets(4, 1)


@pytest.mark.parametrize("view, index", [("frontal", 0), ("lateral", 1)])
def test_phantom_drr_images_are_drrs_of_unseen_phantoms(data_dir, view, index):
    images = domain_b_images("phantom-drr:3", view, SIZE)
    assert images.shape == (3, SIZE, SIZE) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.1
    volume = phantom_volume(size=SIZE, seed=DOMAIN_B_FIRST_SEED + 2)
    np.testing.assert_allclose(images[2], drr(volume.hu, volume.spacing)[index], atol=1e-6)
    manifest = read_manifest(data_dir)
    seeds_a = {int(c["source"].split("=")[1]) for c in manifest.cases}
    assert seeds_a.isdisjoint(range(DOMAIN_B_FIRST_SEED, DOMAIN_B_FIRST_SEED + 3))
    field = "drr_ap" if view == "frontal" else "drr_lateral"
    for case in manifest.cases:
        drr_a = load_case(data_dir, case["id"])[field]
        assert np.abs(images - drr_a).max(axis=(1, 2)).min() > 1e-3  # no domain-A case among them


def test_count_draws_a_seeded_subset():
    full = domain_b_images("phantom-drr:4", "frontal", SIZE)
    sub = domain_b_images("phantom-drr:4", "frontal", SIZE, count=2, seed=1)
    assert sub.shape == (2, SIZE, SIZE)
    assert all(any(np.array_equal(s, f) for f in full) for s in sub)
    np.testing.assert_array_equal(sub, domain_b_images("phantom-drr:4", "frontal", SIZE, count=2, seed=1))


def test_folder_of_pngs_uses_every_image(tmp_path, rng):
    (tmp_path / "sub").mkdir()
    images = [rng.random((24, 16)) for _ in range(3)]
    for i, (name, img) in enumerate(zip(["a.png", "b.jpeg", "sub/c.png"], images)):
        img[0, 0], img[1, 1] = 0.0, 1.0  # full range: read_xray's min-max keeps values
        write_png(tmp_path / name, img)
    (tmp_path / "notes.txt").write_text("not an image")
    out = domain_b_images(str(tmp_path), "lateral", SIZE)
    assert out.shape == (3, SIZE, SIZE) and out.min() >= 0 and out.max() <= 1
    png = np.asarray(Image.open(tmp_path / "a.png"), dtype=np.float64) / 255.0
    expected = resize(np.pad(png, ((0, 0), (4, 4))), (SIZE, SIZE), order=1, anti_aliasing=True)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_chexpert_csv_routes_views(tmp_path, rng):
    root = tmp_path / "CheXpert-v1.0-small"
    study = root / "train" / "patient00001" / "study1"
    study.mkdir(parents=True)
    frontal, lateral = rng.random((20, 20)), np.zeros((20, 20))
    frontal[0, 0], frontal[1, 1] = 0.0, 1.0
    lateral[:, 10:] = 1.0
    write_png(study / "view1_frontal.png", frontal)
    write_png(study / "view2_lateral.png", lateral)
    rel = "CheXpert-v1.0-small/train/patient00001/study1"
    (root / "train.csv").write_text(
        "Path,Sex,Frontal/Lateral,AP/PA\n"
        f"{rel}/view1_frontal.png,F,Frontal,PA\n{rel}/view2_lateral.png,F,Lateral,\n")
    csv = str(root / "train.csv")
    lat = domain_b_images(csv, "lateral", SIZE)
    front = domain_b_images(csv, "frontal", SIZE)
    assert lat.shape == front.shape == (1, SIZE, SIZE)
    assert lat[0, :, : SIZE // 2 - 1].max() == 0.0 and lat[0, :, SIZE // 2 + 1:].min() == 1.0
    assert 0.2 < front.mean() < 0.8


@pytest.mark.parametrize("spec, error, match", [
    ("phantom-drr:0", ConfigError, "phantom-drr:N"),
    ("phantom-drr:x", ConfigError, "phantom-drr:N"),
    ("{tmp}/missing", InputError, "missing: no such file or folder"),
    ("{tmp}", InputError, "no X-ray images"),
])
def test_bad_specs_raise_clear_errors(tmp_path, spec, error, match):
    with pytest.raises(error, match=match):
        domain_b_images(spec.format(tmp=tmp_path), "frontal", SIZE)


def test_chexpert_csv_without_pairs(tmp_path):
    csv = tmp_path / "valid.csv"
    csv.write_text("Path,Frontal/Lateral,AP/PA\nx/p1/s1/view1_frontal.jpg,Frontal,AP\nx/p2/s1/view1_lateral.jpg,Lateral,\n")
    for view in ("frontal", "lateral"):
        with pytest.raises(InputError, match="no study with both a frontal and a lateral image"):
            domain_b_images(str(csv), view, SIZE)


def write_chexpert_studies(root, rng):
    """A CheXpert-v1.0-small/train.csv of 6 paired studies plus one frontal-only and one lateral-only study.

    Each image's interior holds ``(study + 1) / 10`` (frontal) or that + 0.05
    (lateral), corners 0 and 1 (full range), so a read image names its study and view.
    """
    rows = ["Path,Sex,Frontal/Lateral,AP/PA"]
    views = [("frontal", "Frontal", "AP"), ("lateral", "Lateral", "")]
    studies = [(i, views) for i in range(6)] + [(6, views[:1]), (7, views[1:])]
    for i, present in studies:
        rel = f"CheXpert-v1.0-small/train/patient{i:05d}/study1"
        (root / rel).mkdir(parents=True)
        for n, (view, label, appa) in enumerate(present, start=1):
            image = np.full((20, 20), (i + 1) / 10 + (0.05 if view == "lateral" else 0.0))
            image[0, 0], image[-1, -1] = 0.0, 1.0
            write_png(root / rel / f"view{n}_{view}.png", image)
            rows.append(f"{rel}/view{n}_{view}.png,F,{label},{appa}")
    rng.shuffle(rows[1:])  # CSV order is not study order
    (root / "CheXpert-v1.0-small" / "train.csv").write_text("\n".join(rows) + "\n")
    return str(root / "CheXpert-v1.0-small" / "train.csv")


def study_and_view(image):
    """Decode (study, view) from an image of write_chexpert_studies."""
    k = round(float(np.median(image[4:-4, 4:-4])) * 20)  # 2 * (study + 1), + 1 for a lateral
    return k // 2 - 1, "lateral" if k % 2 else "frontal"


def test_chexpert_csv_gives_count_pairs_the_same_studies_for_both_views(tmp_path, rng, monkeypatch):
    from xprospect_tf.data import domains

    csv = write_chexpert_studies(tmp_path, rng)
    reads = []
    read = domains._read
    monkeypatch.setattr(domains, "_read", lambda path: reads.append(path) or read(path))
    chosen = set()
    for seed in range(4):
        views = {v: [study_and_view(x) for x in domain_b_images(csv, v, SIZE, count=3, seed=seed)]
                 for v in ("frontal", "lateral")}
        assert [view for _, view in views["frontal"]] == ["frontal"] * 3  # each model gets its view
        assert [view for _, view in views["lateral"]] == ["lateral"] * 3
        studies = [study for study, _ in views["frontal"]]
        assert studies == [study for study, _ in views["lateral"]]  # the same studies, in the same order
        assert len(set(studies)) == 3 and set(studies) <= set(range(6))  # pairs only: not studies 6, 7
        chosen.add(tuple(sorted(studies)))
        again = [study_and_view(x)[0] for x in domain_b_images(csv, "lateral", SIZE, count=3, seed=seed)]
        assert again == studies  # the draw is a function of the seed
    assert len(chosen) > 1  # another seed, other studies
    assert len(reads) == 4 * 3 * 3  # only the drawn images are read
    everything = domain_b_images(csv, "frontal", SIZE, count=None)
    assert sorted(study_and_view(x)[0] for x in everything) == list(range(6))
    assert len(domain_b_images(csv, "lateral", SIZE, count=2390)) == 6  # count caps; fewer pairs: all


def test_domain_a_images_are_the_mean_ct_projections(data_dir):
    ids, ap = domain_a_images(data_dir, "frontal")
    _, lat = domain_a_images(data_dir, "lateral", split="all")
    train = read_manifest(data_dir).ids("train")
    assert ids == train and ap.shape == (2, SIZE, SIZE) and lat.shape == (4, SIZE, SIZE)
    ct = load_case(data_dir, ids[1])["ct"]
    np.testing.assert_allclose(ap[1], ct.mean(axis=2), atol=1e-4)  # uint16-stored ct vs float mean
    _, drr_ap = domain_a_images(data_dir, "frontal", field="drr_ap")  # any stored base field
    np.testing.assert_array_equal(drr_ap[0], load_case(data_dir, ids[0])["drr_ap"])
    with pytest.raises(InputError, match="styled_ap"):
        domain_a_images(data_dir, "frontal", field="styled_ap")
    with pytest.raises(ConfigError, match="view"):
        domain_a_images(data_dir, "axial")


def test_unpaired_dataset_shuffles_repeats_and_unpairs_both_domains():
    from xprospect_tf.data.domains import unpaired_dataset

    n_a, n_b, epochs = 5, 3, 4  # image i of A holds i, image j of B holds 100 + j
    images_a = np.stack([np.full((8, 8), i, np.float32) for i in range(n_a)])
    images_b = np.stack([np.full((8, 8), 100 + j, np.float32) for j in range(n_b)])
    stream = unpaired_dataset(images_a, images_b, batch_size=1, seed=0)
    pairs = [(int(a[0, 0, 0, 0]), int(b[0, 0, 0, 0])) for a, b in stream.take(n_a * n_b * epochs)]
    seen_a = [a for a, _ in pairs]
    seen_b = [b - 100 for _, b in pairs]
    passes_a = [seen_a[i:i + n_a] for i in range(0, len(seen_a), n_a)]
    passes_b = [seen_b[i:i + n_b] for i in range(0, len(seen_b), n_b)]
    assert all(sorted(p) == list(range(n_a)) for p in passes_a)  # repeated: every image once per pass
    assert all(sorted(p) == list(range(n_b)) for p in passes_b)
    assert any(p != list(range(n_a)) for p in passes_a)  # shuffled
    assert any(p != list(range(n_b)) for p in passes_b)
    assert len({tuple(p) for p in passes_a}) > 1  # reshuffled each pass
    partners = {a: {b for a2, b in pairs if a2 == a} for a in range(n_a)}
    assert all(len(p) > 1 for p in partners.values())  # unpaired: an image meets several partners
    again = [(int(a[0, 0, 0, 0]), int(b[0, 0, 0, 0]))
             for a, b in unpaired_dataset(images_a, images_b, 1, seed=0).take(len(pairs))]
    assert again == pairs  # seeded
    a, b = next(iter(unpaired_dataset(images_a, images_b, batch_size=2, seed=0)))
    assert a.shape == b.shape == (2, 8, 8, 1)


@pytest.mark.parametrize("n_a, n_b, batch_size", [(4, 5, 2), (3, 7, 3), (6, 2, 4)])
def test_unpaired_stream_from_epoch_k_is_the_uninterrupted_streams_tail(n_a, n_b, batch_size):
    """What a resumed fit needs: the stream started at epoch k = the batches from epoch k of the one started at 0."""
    import tensorflow as tf

    from xprospect_tf.data.domains import unpaired_dataset, unpaired_steps

    images_a = np.stack([np.full((8, 8), i, np.float32) for i in range(n_a)])
    images_b = np.stack([np.full((8, 8), 100 + j, np.float32) for j in range(n_b)])
    steps = unpaired_steps(n_a, n_b, batch_size)
    assert steps == -(-max(n_a, n_b) // batch_size)

    def batches(stream, n):
        return [(a[:, 0, 0, 0].numpy().tolist(), b[:, 0, 0, 0].numpy().tolist()) for a, b in stream.take(n)]

    epochs = 4
    full = batches(unpaired_dataset(images_a, images_b, batch_size, seed=3), epochs * steps)
    for k in range(1, epochs):
        tail = batches(unpaired_dataset(images_a, images_b, batch_size, seed=3, epoch=k), (epochs - k) * steps)
        assert tail == full[k * steps:], k
    tf.random.set_seed(1234)  # TensorFlow's global seed plays no part: the order is (seed, pass) only
    assert batches(unpaired_dataset(images_a, images_b, batch_size, seed=3), epochs * steps) == full
    assert batches(unpaired_dataset(images_a, images_b, batch_size, seed=4), epochs * steps) != full
