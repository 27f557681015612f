"""FID and KID (util/evaluation/fid.py): torchmetrics' metrics on torch-fidelity's Inception features.

There is no real Inception weights file here (nothing is downloaded): the network gets random weights
in the layout of the released files, saved to a temporary file. The figures are checked against
independent numpy/scipy formulas on the same features.
"""
import math
import socket
import sys

import numpy as np
import pytest
import torch

from util.errors import UserError
from util.evaluation import fid
from util.evaluation.scores import Evaluation


def random_inception_state(seed=0):
    """Random weights in the layout of the released weights files (torchvision's Inception3 with 1008
    classes, no aux classifier, no batch-norm counters); conv weights scaled (He) so activations
    neither vanish nor explode through the 94 conv layers."""
    from torchvision.models import inception_v3
    generator = torch.Generator().manual_seed(seed)
    state = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    for value in state.values():
        if value.ndim == 4:
            value.normal_(0, math.sqrt(2 / value[0].numel()), generator=generator)
    return {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}


def reference_fid(f1, f2):
    """FID by a route independent of torchmetrics' (eigenvalues of sigma1 sigma2): with sigma_i =
    A_i^T A_i, tr((sigma1 sigma2)^1/2) is the nuclear norm of the small N1xN2 matrix A1 A2^T, exact
    up to rounding even where the covariances are rank deficient (checked against scipy below)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    a1 = (f1 - f1.mean(0)) / np.sqrt(len(f1) - 1)
    a2 = (f2 - f2.mean(0)) / np.sqrt(len(f2) - 1)
    diff = f1.mean(0) - f2.mean(0)
    return float(diff @ diff + np.sum(a1**2) + np.sum(a2**2) - 2 * np.linalg.svd(a1 @ a2.T, compute_uv=False).sum())


def naive_mmd2(x, y):
    """Unbiased MMD^2 with kernel (x.y/d + 1)^3, written out term by term."""
    d, m = x.shape[1], len(x)

    def k(u, v):
        return (u @ v / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def trace_of_covariances(*sets):
    return sum(np.trace(np.cov(np.asarray(f), rowvar=False)) for f in sets)


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('inception') / fid.WEIGHTS_NAME
    torch.save(random_inception_state(), path)
    return path


@pytest.fixture(scope='module')
def model(weights_file):
    return fid.load_inception(str(weights_file))


def blocky_images(count, seed, size=64):
    """Images of 8x8 flat blocks: structure the network responds to."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 216, (count, size // 8, size // 8, 3))
    return list(np.kron(blocks, np.ones((1, 8, 8, 1))).astype(np.uint8))


@pytest.fixture(scope='module')
def image_set():
    return blocky_images(3, seed=1)


@pytest.fixture(scope='module')
def image_features(model, image_set):
    return fid.features(image_set, model, batch_size=2)


def test_the_weights_file_loads_into_torchmetrics_inception(weights_file, model):
    state = torch.load(weights_file, weights_only=True)
    assert len(state) == 94 * 5 + 2  # conv weight, bn weight/bias/mean/var for 94 layers, fc
    assert state['fc.weight'].shape == (1008, 2048)
    assert type(model).__name__ == 'NoTrainInceptionV3' and not model.training
    assert model.use_antialias is False  # TensorFlow 1.x's resize, as the original FID code
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert sum(p.numel() for p in model.parameters()) == 23_850_960


def test_features_shape_and_inputs(model, image_set, image_features):
    assert image_features.shape == (3, 2048) and image_features.dtype == np.float64
    assert np.isfinite(image_features).all()
    assert image_features.std() > 0.01
    # One batch or one image at a time: the same features.
    np.testing.assert_allclose(fid.features(image_set, model, batch_size=1), image_features, rtol=1e-4, atol=1e-5)
    # Mixed sizes and grayscale in one call.
    grey = image_set[0][:48, :40, 0]
    mixed = fid.features([image_set[1], grey, image_set[2]], model)
    assert mixed.shape == (3, 2048)
    np.testing.assert_allclose(mixed[[0, 2]], image_features[1:], rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError):
        fid.features([image_set[0].astype(np.float32)], model)


def test_a_pytorch_fid_weights_file_serves_as_is(weights_file, model, tmp_path, monkeypatch):
    """pytorch-fid's pt_inception-2015-12-05-6726825d.pth loads into pytorch-fid's network with strict
    key matching; a file of that network's state_dict loads here too, and the two networks then give
    the same features for the same (already 299x299, already scaled) input."""
    reference = pytest.importorskip('pytorch_fid.inception')
    state = torch.load(weights_file, weights_only=True)
    monkeypatch.setattr(reference, 'load_state_dict_from_url', lambda *a, **k: state)  # in place of its download
    # The layout of pytorch-fid's file is that of fid_inception_v3(), which loads it strictly.
    path = tmp_path / fid.PYTORCH_FID_WEIGHTS_NAME
    torch.save(reference.fid_inception_v3().state_dict(), path)  # with the batch-norm counters
    assert any(k.endswith('num_batches_tracked') for k in torch.load(path, weights_only=True))
    from_pytorch_fid_file = fid.load_inception(str(path))

    image = blocky_images(1, seed=2, size=304)[0][:299, :299]
    ours = fid.features([image], from_pytorch_fid_file)
    np.testing.assert_array_equal(ours, fid.features([image], model))
    # pytorch-fid scales to [-1, 1] as (x/255)*2-1, torch-fidelity as (x-128)/128: hand it the latter.
    net = reference.InceptionV3([3], resize_input=False, normalize_input=False).eval()
    with torch.no_grad():
        theirs = net((torch.from_numpy(image.transpose(2, 0, 1))[None].float() - 128) / 128)[0].flatten(1)
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-4, atol=1e-5)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fid.load_inception(str(tmp_path / 'nowhere.pth'))
    message = str(info.value)
    assert 'nowhere.pth' in message and fid.WEIGHTS_URL in message and fid.PYTORCH_FID_WEIGHTS_NAME in message


def test_unusable_files(weights_file, tmp_path):
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a torch file')
    with pytest.raises(RuntimeError, match='garbage.pth.*is not a valid.*' + fid.WEIGHTS_NAME):
        fid.load_inception(str(garbage))

    wrong = tmp_path / 'wrong.pth'
    torch.save({'fc.weight': torch.zeros(1008, 2048)}, wrong)
    with pytest.raises(RuntimeError, match='wrong.pth.*Missing key') as info:
        fid.load_inception(str(wrong))
    assert fid.WEIGHTS_URL in str(info.value) and str(info.value).count('.weight') < 10  # not 470 key names

    # torchvision's ImageNet Inception v3 (1000 classes, aux classifier) is another network.
    imagenet = tmp_path / 'inception_v3_google.pth'
    state = dict(torch.load(weights_file, weights_only=True), **{'fc.weight': torch.zeros(1000, 2048),
                                                                  'AuxLogits.fc.bias': torch.zeros(1000)})
    torch.save(state, imagenet)
    with pytest.raises(RuntimeError, match='inception_v3_google.pth.*is not a valid'):
        fid.load_inception(str(imagenet))


class WritesAFile:
    """Unpickling this runs exec(), which writes a file: what a malicious weights file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("code ran")',)


def test_a_weights_file_cannot_run_code(tmp_path):
    evil = tmp_path / fid.WEIGHTS_NAME
    torch.save({'fc.weight': torch.zeros(1008, 2048), 'payload': WritesAFile(tmp_path / 'marker')}, evil)
    with pytest.raises(RuntimeError, match='is not a valid'):
        fid.load_inception(str(evil))
    assert not (tmp_path / 'marker').exists()


def test_nothing_is_downloaded(weights_file, image_set, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise AssertionError(f'network access: {args}')

    import torch_fidelity.feature_extractor_inceptionv3 as extractor
    monkeypatch.setattr(socket.socket, 'connect', offline)
    monkeypatch.setattr(socket, 'getaddrinfo', offline)
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', offline)
    monkeypatch.setattr(extractor, 'load_state_dict_from_url', offline)
    with pytest.raises(FileNotFoundError):
        fid.load_inception(str(tmp_path / 'nowhere.pth'))
    features = fid.features(image_set, fid.load_inception(str(weights_file)))[:, :64]  # FID in 2048-d is slow
    assert math.isfinite(fid.fid_from_features(features, features[::-1]))
    assert all(map(math.isfinite, fid.kid_from_features(features, features[::-1])))


def test_without_torchmetrics_the_error_names_the_install_command(weights_file, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch_fidelity', None)  # import fails as if not installed
    with pytest.raises(ImportError, match='torch-fidelity'):
        fid.load_inception(str(weights_file))
    with pytest.raises(UserError) as info:
        Evaluation({'input': 'real_A', 'output': 'fake_B', 'target': 'real_B'}, fid_weights=str(weights_file))
    assert str(info.value).startswith('error: --fid_weights: ') and fid.INSTALL in str(info.value)


def test_fid_and_kid_of_images(model, image_set, image_features):
    scale = trace_of_covariances(image_features)
    # torchmetrics takes eigenvalues of the rank-deficient 2048x2048 product sigma1 sigma2: ~1e-6 of
    # the covariances' trace off zero, where the small-matrix route is exact to rounding.
    assert abs(fid.fid_from_features(image_features, image_features)) <= 1e-5 * scale

    brighter = [np.clip(im.astype(int) + 40, 0, 255).astype(np.uint8) for im in image_set]
    shifted = fid.features(brighter, model)
    value = fid.fid_from_features(image_features, shifted)
    assert value > 0.01 * scale
    assert value == pytest.approx(reference_fid(image_features, shifted), abs=1e-5 * (scale + trace_of_covariances(shifted)))

    same_kid, same_std = fid.kid_from_features(image_features, image_features)
    shifted_kid, _ = fid.kid_from_features(image_features, shifted)
    assert shifted_kid > 10 * abs(same_kid)
    # Subsets as big as the sets (3) are permutations of them: every estimate is the full-set one.
    assert shifted_kid == pytest.approx(naive_mmd2(image_features, shifted), rel=1e-9)
    assert same_kid == pytest.approx(naive_mmd2(image_features, image_features), rel=1e-9) and same_std < 1e-12


def exact_moments(rng, n, mean, cov_sqrt):
    """n samples whose sample mean and covariance (N-1) are exactly `mean` and cov_sqrt cov_sqrt^T."""
    z = rng.normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = np.linalg.solve(np.linalg.cholesky(np.cov(z, rowvar=False)), z.T).T  # identity sample covariance
    return z @ cov_sqrt.T + mean


def test_fid_diagonal_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    f1 = exact_moments(rng, 30, mu1, np.diag(np.sqrt(s1)))
    f2 = exact_moments(rng, 40, mu2, np.diag(np.sqrt(s2)))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fid.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-9)
    assert fid.fid_from_features(f1, f1) == pytest.approx(0, abs=1e-10)


def test_fid_commuting_full_covariances():
    # Covariances sharing eigenvectors reduce to the diagonal case in that basis.
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    s1, s2 = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    f1 = exact_moments(rng, 20, np.zeros(5), q @ np.diag(np.sqrt(s1)))
    f2 = exact_moments(rng, 25, np.zeros(5), q @ np.diag(np.sqrt(s2)))
    assert fid.fid_from_features(f1, f2) == pytest.approx(np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)), rel=1e-9)


def test_fid_matches_scipy_sqrtm():
    linalg = pytest.importorskip('scipy.linalg')
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) @ rng.normal(size=(8, 8))
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    trace_sqrt = np.trace(linalg.sqrtm(c1 @ c2)).real
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt
    assert fid.fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)
    assert reference_fid(a, b) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize('n1,n2', [(12, 20), (30, 7), (100, 80)])
def test_fid_agrees_with_the_reference_formula(n1, n2):
    rng = np.random.default_rng(n1)
    f1 = rng.normal(size=(n1, 40))
    f2 = rng.normal(0.2, 1.5, size=(n2, 40)) @ rng.normal(size=(40, 40)) / 6
    expected = reference_fid(f1, f2)
    # Fewer samples than dimensions leave the covariances rank deficient, and the eigenvalue route
    # loses ~1e-8 relative there.
    assert fid.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert fid.fid_from_features(f2, f1) == pytest.approx(expected, rel=1e-6)


def test_fid_fewer_samples_than_dimensions():
    # The usual case for test sets (say 100 images, 2048 features), scaled down: 10 samples, 256
    # features (torchmetrics' eigenvalues of 2048x2048 take 6 s on 2 idle cores, a minute on busy ones).
    rng = np.random.default_rng(6)
    f = rng.normal(size=(10, 256))
    tolerance = 1e-5 * trace_of_covariances(f, f)  # measured: 2e-7 of it
    assert abs(fid.fid_from_features(f, f)) <= tolerance
    assert fid.fid_from_features(f, f + 0.5) == pytest.approx(256 * 0.25, abs=tolerance)


def test_fid_input_checks():
    with pytest.raises(ValueError, match='N >= 2'):
        fid.fid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError):
        fid.fid_from_features(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        fid.kid_from_features(np.zeros((5, 4)), np.zeros((1, 4)))


def test_kid_full_set_matches_naive_mmd():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.3, 1.2, size=(12, 5))
    # Subsets as big as the sets are just permutations: every estimate is the same.
    mean, std = fid.kid_from_features(x, y, num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(naive_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0, abs=1e-12)


def test_kid_distinguishes_distributions():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 16))
    y = rng.normal(size=(300, 16))
    z = rng.normal(0.5, 1.0, size=(300, 16))
    same_mean, same_std = fid.kid_from_features(x, y, num_subsets=20, subset_size=100)
    diff_mean, _ = fid.kid_from_features(x, z, num_subsets=20, subset_size=100)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert diff_mean > 10 * max(abs(same_mean), same_std)


def test_kid_subsets_are_repeatable_and_leave_the_global_random_state_alone():
    rng = np.random.default_rng(9)
    x, z = rng.normal(size=(50, 8)), rng.normal(0.5, 1.0, size=(50, 8))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = fid.kid_from_features(x, z, num_subsets=10, subset_size=20)
    assert torch.equal(torch.rand(3), expected_next)
    assert fid.kid_from_features(x, z, num_subsets=10, subset_size=20) == first
    assert fid.kid_from_features(x, z, num_subsets=10, subset_size=20, seed=1) != first
    # By hand: the same subsets drawn as torchmetrics draws them, the MMD formula written out.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        estimates = []
        for _ in range(10):
            real, fake = torch.randperm(50)[:20].numpy(), torch.randperm(50)[:20].numpy()
            estimates.append(naive_mmd2(x[fake], z[real]))  # the second set is the 'real' one
    assert first == pytest.approx((np.mean(estimates), np.std(estimates)), rel=1e-9)
