import numpy as np
import pytest
import torch

from util.evaluation.fid import (
    WEIGHTS_NAME,
    WEIGHTS_URL,
    InceptionFeatures,
    features,
    fid_from_features,
    frechet_distance,
    kid_from_features,
)


@pytest.fixture(scope="module")
def model():
    """Random weights (no weights file here), scaled so activations neither
    vanish nor explode through the 90-odd layers."""
    torch.manual_seed(0)
    net = InceptionFeatures()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


def blocky_images(count, seed, size=64):
    """Images of 8x8 flat blocks: structure the network responds to."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 216, (count, size // 8, size // 8, 3))
    return list(np.kron(blocks, np.ones((1, 8, 8, 1))).astype(np.uint8))


@pytest.fixture(scope="module")
def image_set():
    return blocky_images(3, seed=1)


@pytest.fixture(scope="module")
def image_features(model, image_set):
    return features(image_set, model, batch_size=2)


def test_features_shape_and_inputs(model, image_set, image_features):
    assert image_features.shape == (3, 2048)
    assert np.isfinite(image_features).all()
    assert image_features.std() > 0.01

    batch = torch.from_numpy(np.stack(image_set[:2]).transpose(0, 3, 1, 2)).float() / 255
    from_tensor = features(batch, model)
    np.testing.assert_allclose(from_tensor, image_features[:2], rtol=1e-4, atol=1e-5)

    # Mixed sizes and grayscale share one batch.
    grey = image_set[0][:48, :40, 0]
    mixed = features([image_set[1], grey], model)
    assert mixed.shape == (2, 2048)
    np.testing.assert_allclose(mixed[0], image_features[1], rtol=1e-4, atol=1e-5)


def test_matches_pytorch_fid_network(model, image_set, image_features, monkeypatch):
    """Same outputs as pytorch-fid's InceptionV3 carrying the same weights."""
    reference = pytest.importorskip("pytorch_fid.inception")
    # Hand it our weights in place of its download; its strict load also checks the keys.
    monkeypatch.setattr(reference, "load_state_dict_from_url", lambda *a, **k: model.state_dict())
    net = reference.InceptionV3([3]).eval()
    batch = torch.from_numpy(image_set[0].transpose(2, 0, 1)[None]).float() / 255
    with torch.no_grad():
        expected = net(batch)[0].flatten(1).double().numpy()
    np.testing.assert_allclose(image_features[:1], expected, rtol=1e-4, atol=1e-6)


def test_state_dict_matches_weights_file_layout():
    keys = InceptionFeatures().state_dict()
    shapes = {name: tuple(tensor.shape) for name, tensor in keys.items()}
    # Layout of pt_inception-2015-12-05: torchvision's Inception3 with 1008
    # classes and no aux classifier (what pytorch-fid loads it into).
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Conv2d_1a_3x3.bn.running_mean"] == (32,)
    assert shapes["Conv2d_4a_3x3.conv.weight"] == (192, 80, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6a.branch3x3.conv.weight"] == (384, 288, 3, 3)
    assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert shapes["Mixed_7c.branch_pool.bn.running_var"] == (192,)
    assert shapes["fc.weight"] == (1008, 2048)
    assert shapes["fc.bias"] == (1008,)
    assert not any(name.startswith("AuxLogits") for name in keys)
    # 94 conv+bn layers (conv weight, bn weight/bias/mean/var/count) plus fc.
    assert len(keys) == 94 * 6 + 2
    assert sum(p.numel() for p in InceptionFeatures().parameters()) == 23_850_960

    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    ).state_dict()
    assert shapes == {name: tuple(tensor.shape) for name, tensor in reference.items()}


def test_from_weights_round_trip(model, tmp_path):
    path = tmp_path / WEIGHTS_NAME
    # Older files lack the batch-norm counters; they must load all the same.
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    loaded = InceptionFeatures.from_weights(str(path))
    for name, tensor in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(loaded.state_dict()[name], tensor)
    assert not loaded.training


def test_from_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        InceptionFeatures.from_weights(str(tmp_path / "nowhere.pth"))
    assert "nowhere.pth" in str(info.value)
    assert WEIGHTS_URL in str(info.value)


def test_from_weights_bad_file(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match=WEIGHTS_NAME):
        InceptionFeatures.from_weights(str(garbage))

    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, wrong)
    with pytest.raises(RuntimeError, match="wrong.pth"):
        InceptionFeatures.from_weights(str(wrong))


def test_fid_and_kid_of_images(model, image_set, image_features):
    same_fid = fid_from_features(image_features, image_features)
    scale = np.trace(np.cov(image_features, rowvar=False))
    assert abs(same_fid) <= 1e-6 * scale

    brighter = [np.clip(im.astype(int) + 40, 0, 255).astype(np.uint8) for im in image_set]
    shifted = features(brighter, model)
    assert fid_from_features(image_features, shifted) > 0.01 * scale

    same_kid, _ = kid_from_features(image_features, image_features)
    shifted_kid, _ = kid_from_features(image_features, shifted)
    assert shifted_kid > 10 * abs(same_kid)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0, abs=1e-12)


def test_frechet_distance_commuting_full_covariances():
    # Covariances sharing eigenvectors reduce to the diagonal case in that basis.
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    s1, s2 = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    expected = np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    value = frechet_distance(np.zeros(5), q @ np.diag(s1) @ q.T, np.zeros(5), q @ np.diag(s2) @ q.T)
    assert value == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) @ rng.normal(size=(8, 8))
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    trace_sqrt = np.trace(linalg.sqrtm(c1 @ c2)).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)


def test_fid_fewer_samples_than_dimensions():
    # The usual case for test sets: covariances are rank deficient.
    rng = np.random.default_rng(6)
    f = rng.normal(size=(10, 2048))
    assert abs(fid_from_features(f, f)) <= 1e-6 * np.trace(np.cov(f, rowvar=False))
    assert fid_from_features(f, f + 0.5) == pytest.approx(2048 * 0.25, rel=1e-6)

    small = rng.normal(size=(10, 64))
    cov = np.cov(small, rowvar=False)
    assert abs(frechet_distance(small.mean(0), cov, small.mean(0), cov)) <= 1e-6 * np.trace(cov)


@pytest.mark.parametrize("n1,n2", [(12, 20), (30, 7), (100, 80)])
def test_fid_from_features_agrees_with_covariance_formula(n1, n2):
    rng = np.random.default_rng(n1)
    f1 = rng.normal(size=(n1, 40))
    f2 = rng.normal(0.2, 1.5, size=(n2, 40)) @ rng.normal(size=(40, 40)) / 6
    expected = frechet_distance(
        f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    )
    # The covariance route loses ~1e-8 relative on rank-deficient covariances.
    assert fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert fid_from_features(f2, f1) == pytest.approx(expected, rel=1e-6)


def naive_mmd2(x, y):
    """Unbiased MMD^2 with kernel (x.y/d + 1)^3, written out term by term."""
    d, m = x.shape[1], len(x)

    def k(u, v):
        return (u @ v / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_full_set_matches_naive_mmd():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.3, 1.2, size=(12, 5))
    # Subsets as big as the sets are just permutations: every estimate is the same.
    mean, std = kid_from_features(x, y, num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(naive_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0, abs=1e-12)


def test_kid_distinguishes_distributions():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 16))
    y = rng.normal(size=(300, 16))
    z = rng.normal(0.5, 1.0, size=(300, 16))
    same_mean, same_std = kid_from_features(x, y, num_subsets=20, subset_size=100)
    diff_mean, _ = kid_from_features(x, z, num_subsets=20, subset_size=100)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert diff_mean > 10 * max(abs(same_mean), same_std)
    # Same seed, same subsets.
    assert kid_from_features(x, z, num_subsets=20, subset_size=100) == kid_from_features(
        x, z, num_subsets=20, subset_size=100
    )
