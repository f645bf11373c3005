"""DUpsampling: the label-patch PCA, its round trip, the flattening order, W and T, the models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import test_contract
from fusionlab.datasets import SyntheticScenes
from fusionlab.encoders import ResNetEncoder
from fusionlab.experiments import MODELS, PROFILES, BuildContext
from fusionlab.experiments.ablations.dupsampling import (DUPSAMPLING, MODEL_OPTIONS,
                                                         build_dupsampling)
from fusionlab.experiments.spec import ModelSpec
from fusionlab.models import label_space as dup
from fusionlab.models.base import conv1x1_head
from fusionlab.models.dupsampling import AdaptiveTemperature, DUpsampling, DUpsamplingNet
from fusionlab.models.label_space import (LabelProjection, bilinear_reconstruction,
                                          fit_label_projection, miou_star)
from fusionlab.train import poly_schedule

K = 11


@pytest.fixture(scope="module")
def scenes():
    return SyntheticScenes(6, (40, 56), seed=3)  # non-square: 10 x 14 patches at r = 4


def one_hot(masks, k=K):
    """Independent one-hot: (N, H, W) -> (N, K, H, W), void -> all zeros."""
    out = torch.zeros(masks.shape[0], k, *masks.shape[1:])
    for c in range(k):
        out[:, c] = (masks == c).float()
    return out


def patch_vectors(masks, r, k=K):
    """Every r x r patch as a vector in (c, dy, dx) order, by explicit loops: (M, K r^2) and the
    labelled indicator (M, r^2)."""
    n, h, w = masks.shape
    vectors, labelled = [], []
    for i in range(n):
        for y in range(0, h, r):
            for x in range(0, w, r):
                patch = masks[i, y:y + r, x:x + r]
                vectors.append(np.stack([(patch == c) for c in range(k)]).reshape(-1))
                labelled.append((patch != 255).reshape(-1))
    return np.array(vectors, np.float64), np.array(labelled, np.float64)


def descending_eigenvalues(matrix):
    """Eigenvalues of a symmetric numpy matrix, largest first (LAPACK on one thread: threaded
    solvers crawl on a busy 2-core machine)."""
    with dup._single_threaded():
        return torch.linalg.eigvalsh(torch.from_numpy(matrix)).flip(0).numpy()


def masks_of(ds):
    return torch.from_numpy(ds.masks.astype(np.int64))


# -- the fit ------------------------------------------------------------------------------------
@pytest.mark.parametrize("images, r", [(6, 4), (1, 8)], ids=["covariance", "gram"])
def test_full_rank_round_trip_reproduces_every_patch_on_a_non_square_map(scenes, images, r):
    """C~ = K r^2: DUpsampling of P v is v itself, on 40 x 56 maps (10 x 14 or 5 x 7 patches).
    With one image there are fewer distinct patches than K r^2: the Gram-matrix path, W
    completed beyond the data's rank."""
    masks = masks_of(scenes)[:images]
    projection = fit_label_projection(masks, r, K * r * r, num_classes=K, cache=False)
    assert torch.allclose(projection.W.T @ projection.W, torch.eye(K * r * r), atol=1e-5)
    up = DUpsampling(projection)(projection.encode(masks))  # (N, K, 40, 56)
    assert up.shape == (images, K, 40, 56)
    assert torch.allclose(up, one_hot(masks), atol=1e-4)


@pytest.mark.parametrize("centred", [True, False])
def test_reconstruction_error_is_the_sum_of_the_discarded_eigenvalues(scenes, centred):
    r, c = 4, 20
    masks = masks_of(scenes)
    v, _ = patch_vectors(scenes.masks, r)  # (M, K r^2)
    mean = v.mean(0) if centred else np.zeros(v.shape[1])
    eigenvalues = descending_eigenvalues((v - mean).T @ (v - mean) / len(v))
    projection = fit_label_projection(masks, r, c, centred=centred, num_classes=K, cache=False)
    assert np.allclose(projection.explained_variance.numpy(), eigenvalues[:c], rtol=1e-6,
                       atol=1e-9)
    assert projection.total_variance == pytest.approx(eigenvalues.sum(), rel=1e-9)
    w, m = projection.W.double().numpy(), projection.mean.double().numpy()
    assert np.allclose(m, mean, atol=1e-7)
    reconstructed = (v - m) @ w @ w.T + m
    error = np.square(v - reconstructed).sum(1).mean()
    assert error == pytest.approx(eigenvalues[c:].sum(), rel=1e-5)
    assert error == pytest.approx(projection.residual_variance, rel=1e-5)
    # the module path: decode(encode) is the same reconstruction, laid out as label maps
    scores = projection.reconstruct(masks)  # (N, K, H, W)
    pixel_error = (scores.double() - one_hot(masks).double()).square().sum() / len(v)
    assert float(pixel_error) == pytest.approx(error, rel=1e-4)


def test_void_pixels_add_nothing_to_the_fit(scenes):
    r, c = 4, 12
    masks = scenes.masks.copy()
    masks[:, 5:17, 9:30] = 255  # a void block over several patches, partly covering some
    masks[2] = 255  # and a wholly void image
    v, labelled = patch_vectors(masks, r)
    known = np.repeat(labelled[:, None, :], K, 1).reshape(len(v), -1)  # (M, K r^2)
    mean = v.sum(0) / np.maximum(known.sum(0), 1)  # share of class c among labelled at p
    y = (v - mean) * known  # void entries contribute 0
    eigenvalues = descending_eigenvalues(y.T @ y / len(v))
    projection = fit_label_projection(masks, r, c, num_classes=K, cache=False)
    assert np.allclose(projection.mean.numpy(), mean, atol=1e-6)
    assert np.allclose(projection.explained_variance.numpy(), eigenvalues[:c], rtol=1e-6)
    assert projection.void_share == pytest.approx(1 - labelled.mean())
    # void mapped to class 0 (a reimplementation's trap) would teach W a fake class 0
    as_class_0 = fit_label_projection(np.where(masks == 255, 0, masks), r, c, num_classes=K,
                                      cache=False)
    assert as_class_0.mean.view(K, -1)[0].mean() > projection.mean.view(K, -1)[0].mean() + 0.05


def test_subspace_iteration_matches_the_full_decomposition(scenes, monkeypatch):
    masks = masks_of(scenes)
    exact = fit_label_projection(masks, 4, 24, num_classes=K, cache=False)
    monkeypatch.setattr(dup, "EXACT_SOLVER_MAX", 0)
    iterated = fit_label_projection(masks, 4, 24, num_classes=K, cache=False)
    # stopped when the captured variance grew by less than 1e-6 of itself
    captured = iterated.explained_variance.sum() / exact.explained_variance.sum()
    assert float(captured) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(iterated.explained_variance, exact.explained_variance, rtol=1e-4)
    # the same subspace: the cosines of the principal angles are all 1
    cosines = torch.linalg.svdvals(iterated.W.double().T @ exact.W.double())
    assert torch.allclose(cosines, torch.ones(24, dtype=torch.float64), atol=1e-3)


def test_the_fit_is_cached_by_data_and_arguments(scenes, monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path))
    first = fit_label_projection(scenes, 4, 8)
    files = sorted((tmp_path / "label-projections").glob("*.npz"))
    assert len(files) == 1

    def no_fit(*args):
        raise AssertionError("fitted again instead of reading the cache")
    fit = dup._principal_directions
    monkeypatch.setattr(dup, "_principal_directions", no_fit)
    again = fit_label_projection(scenes, 4, 8)
    assert torch.equal(again.W, first.W) and torch.equal(again.mean, first.mean)
    assert again.total_variance == first.total_variance and again.ratio == 4
    with pytest.raises(AssertionError, match="fitted again"):  # other data, other key
        fit_label_projection(scenes.masks[:3], 4, 8, num_classes=K)
    with pytest.raises(AssertionError, match="fitted again"):  # other arguments, other key
        fit_label_projection(scenes, 4, 8, centred=False)
    monkeypatch.setattr(dup, "_principal_directions", fit)
    files[0].write_bytes(b"truncated")  # an unreadable cache is fitted again and replaced
    assert torch.equal(fit_label_projection(scenes, 4, 8).W, first.W)
    assert LabelProjection.load(files[0]).num_components == 8


def test_fit_reads_stored_labels_through_subsets_never_augmented_samples():
    ds = SyntheticScenes(5, (32, 48), seed=1, augment=True)
    subset = torch.utils.data.Subset(torch.utils.data.Subset(ds, [4, 3, 1, 0]), [0, 2])
    a = fit_label_projection(subset, 8, 10, cache=False)
    b = fit_label_projection(ds.masks[[4, 1]], 8, 10, num_classes=K, cache=False)
    assert torch.equal(a.W, b.W) and a.num_patches == 2 * 4 * 6


def test_fit_refuses_bad_input_clearly(scenes):
    with pytest.raises(ValueError, match=r"0\.\.4 or be 255"):
        fit_label_projection(scenes, 4, 8, num_classes=5, cache=False)
    with pytest.raises(ValueError, match="num_components"):
        fit_label_projection(scenes, 2, 45, cache=False)
    with pytest.raises(ValueError, match="ratio"):
        fit_label_projection(scenes, 0, 4, cache=False)
    with pytest.raises(ValueError, match="num_classes="):
        fit_label_projection(scenes.masks, 4, 4, cache=False)
    with pytest.raises(TypeError, match="integers"):
        fit_label_projection(scenes.masks.astype(np.float32), 4, 4, num_classes=K, cache=False)
    with pytest.raises(TypeError, match=r"\.masks"):
        fit_label_projection([scenes[0]], 4, 4, num_classes=K, cache=False)


def test_flattening_trap_scrambles_classes(scenes):
    """A (dy, dx, c) flattening (LinZhuoChen's) fitted at full rank reproduces its own vectors,
    but pixel_shuffle reads them as (c, dy, dx): classes and positions are scrambled."""
    r = 4
    masks = masks_of(scenes)
    onehot = one_hot(masks)  # (N, K, H, W)
    right = F.pixel_unshuffle(onehot, r)  # (N, K r^2, h, w), channel c r^2 + dy r + dx
    n, _, h, w = right.shape
    wrong = onehot.view(n, K, h, r, w, r).permute(0, 3, 5, 1, 2, 4).reshape(n, -1, h, w)
    for channels, expect_exact in ((right, True), (wrong, False)):
        v = channels.permute(0, 2, 3, 1).reshape(-1, K * r * r).double()  # (M, K r^2)
        mean = v.mean(0)
        with dup._single_threaded():
            basis = torch.linalg.eigh((v - mean).T @ (v - mean))[1].flip(1).float()  # full rank
        projection = LabelProjection(K, r, basis, mean.float(), torch.zeros(K * r * r), 1.0)
        codes = F.conv2d(channels - mean.float()[:, None, None],
                         projection.P[:, :, None, None])  # (N, C~, h, w)
        predicted = DUpsampling(projection)(codes).argmax(1)  # (N, H, W)
        accuracy = (predicted == masks).float().mean().item()
        if expect_exact:
            assert accuracy == 1.0
        else:
            assert accuracy < 0.5, accuracy


# -- upper bounds -----------------------------------------------------------------------------
def test_miou_star_scores_the_reconstruction_with_the_metrics(scenes):
    masks = masks_of(scenes)
    full = fit_label_projection(scenes, 4, K * 16, cache=False)
    assert miou_star(scenes, full)["miou"] == pytest.approx(1.0)
    low = full.truncate(6)
    predicted = low.reconstruct(masks).argmax(1)
    iou = [((predicted == c) & (masks == c)).sum() / ((predicted == c) | (masks == c)).sum()
           for c in range(K) if ((predicted == c) | (masks == c)).any()]
    assert miou_star(scenes, low)["miou"] == pytest.approx(float(torch.stack(iou).mean()))
    assert miou_star(scenes, low)["miou"] < 1.0
    with pytest.raises(ValueError, match="exactly one"):
        miou_star(scenes, low, ratio=4)



def test_the_miou_star_sweep_scores_every_fit_length_and_ratio(scenes):
    fits = {(4, True): fit_label_projection(scenes, 4, 16, cache=False),
            (8, False): fit_label_projection(scenes, 8, 16, centred=False, cache=False)}
    star = dup.miou_star_sweep(scenes, fits, (2, 16))
    assert set(star) == {(True, 4, 2), (True, 4, 16), (False, 8, 2), (False, 8, 16),
                         ("bilinear", 4), ("bilinear", 8)}
    assert star[True, 4, 2] == pytest.approx(miou_star(scenes, fits[4, True].truncate(2))["miou"])
    assert star["bilinear", 8] == pytest.approx(miou_star(scenes, ratio=8)["miou"])
    assert star[True, 4, 2] < star[True, 4, 16]                 # more components, a better bound
    with pytest.raises(ValueError, match="num_components"):
        dup.miou_star_sweep(scenes, fits, (17,))

def test_bilinear_reconstruction_is_pooled_shares_upsampled():
    masks = torch.tensor([[[0, 0, 1, 1, 255, 255],
                           [0, 1, 1, 1, 255, 2]]])  # (1, 2, 6): cells of 2 x 2
    scores = bilinear_reconstruction(masks, 3, 2)  # (1, 3, 2, 6)
    assert scores.shape == (1, 3, 2, 6)
    shares = torch.tensor([[3 / 4, 0, 0], [1 / 4, 1, 0], [0, 0, 1]])  # (K, cells), labelled only
    expected = F.interpolate(shares[None, :, None, :], scale_factor=2, mode="bilinear")
    assert torch.allclose(scores, expected)
    # an odd size is padded with void and cropped back: the last cell has no labelled pixel
    odd = bilinear_reconstruction(masks[..., :5], 3, 2)  # (1, 3, 2, 5)
    shares[:, 2] = 0
    expected = F.interpolate(shares[None, :, None, :], scale_factor=2, mode="bilinear")
    assert odd.shape == (1, 3, 2, 5) and torch.allclose(odd, expected[..., :5])


def test_encode_gives_void_pixels_no_code(scenes):
    """A void pixel is taken as the mean's value: a wholly void patch encodes to exactly 0, and
    a half-void patch to the code of its labelled half alone."""
    r = 4
    projection = fit_label_projection(scenes, r, 10, cache=False)
    masks = masks_of(scenes)[:1, :8, :8].clone()  # (1, 8, 8): four 4 x 4 patches
    masks[0, :4, :4] = 255  # patch (0, 0) wholly void
    codes = projection.encode(masks)  # (1, 10, 2, 2)
    assert torch.equal(codes[0, :, 0, 0], torch.zeros(10))
    assert codes[0, :, 1, 1].abs().sum() > 0
    half = masks.clone()
    half[0, 4:, 4:6] = 255  # the left half of patch (1, 1) void
    onehot = F.one_hot(masks[0, 4:, 4:].long(), K).permute(2, 0, 1).float()  # (K, 4, 4)
    known = torch.ones(1, 4, 4)
    known[:, :, :2] = 0
    mean = projection.mean.view(K, r, r)  # the mean patch, (K, r, r)
    by_hand = projection.P @ ((onehot - mean) * known).reshape(-1)  # (C~,)
    assert torch.allclose(projection.encode(half)[0, :, 1, 1], by_hand, atol=1e-6)


# -- modules ----------------------------------------------------------------------------------
def small_projection(scenes, r=16, c=8):
    return fit_label_projection(scenes, r, c, cache=False)


def small_encoder(output_stride=16):
    return ResNetEncoder(blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64), output_stride=output_stride)


@pytest.mark.parametrize("learn_w", [False, True])
def test_w_stays_fixed_through_an_optimiser_step_unless_learned(scenes, learn_w):
    torch.manual_seed(0)
    model = DUpsamplingNet(K, small_encoder(), small_projection(scenes), learn_w=learn_w,
                           channels=16)
    dupsampling = model.head[1]
    names = {n for n, _ in model.named_parameters()}
    assert ("head.1.weight" in names) == learn_w and "head.1.weight" in model.state_dict()
    before = dupsampling.weight.detach().clone()
    conv_before = model.head[0].weight.detach().clone()
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.1)
    images, masks = torch.randn(2, 3, 40, 56), masks_of(scenes)[:2]
    F.cross_entropy(model(images).logits, masks).backward()
    optimiser.step()
    assert not torch.equal(model.head[0].weight, conv_before)
    assert torch.equal(dupsampling.weight, before) != learn_w
    # the mean patch (the bias added back after W) is learned with W, or fixed with it
    assert ("head.1.bias" in names) == learn_w
    assert torch.equal(dupsampling.bias, small_projection(scenes).mean) != learn_w


def test_w_from_scratch_is_random_and_must_be_learned(scenes):
    projection = small_projection(scenes)
    torch.manual_seed(0)
    scratch = DUpsampling(projection, learn_w=True, w_init="random")
    assert scratch.weight.shape == projection.W.shape
    assert not torch.allclose(scratch.weight, projection.W, atol=1e-2)
    with pytest.raises(ValueError, match="learn_w=True"):
        DUpsampling(projection, w_init="random")
    with pytest.raises(ValueError, match="w_init"):
        DUpsampling(projection, learn_w=True, w_init="kaiming")
    with pytest.raises(ValueError, match=r"\(N, 8, h, w\)"):
        DUpsampling(projection)(torch.zeros(1, 7, 2, 3))


def test_temperature_divides_the_scores_and_stays_positive():
    temperature = AdaptiveTemperature(0.5)
    z = torch.randn(2, 3, 4, 5)
    assert torch.allclose(temperature(z), z / 0.5)
    optimiser = torch.optim.SGD(temperature.parameters(), lr=10.0)
    for _ in range(3):  # loss T with steps that would take a plain T to 0.5 - 10 < 0
        optimiser.zero_grad()
        (1 / temperature(torch.ones(1))).sum().backward()
        optimiser.step()
    assert 0 < temperature.temperature < 0.01 and temperature(torch.ones(1)).isfinite().all()
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="temperature"):
            AdaptiveTemperature(bad)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_adamw_moves_log_temperature_by_about_the_summed_learning_rate(scale):
    # the numbers of AdaptiveTemperature's docstring: 450 steps at lr 2e-3 on a poly schedule;
    # a hundred times smaller scores (and gradients) change nothing
    temperature = AdaptiveTemperature(1.0)
    optimiser = torch.optim.AdamW(temperature.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = poly_schedule(optimiser, 450, 0.9)
    scores = scale * torch.eye(K)[None, :, :, None]  # (1, K, K, 1): one-hot labels' scores
    labels = torch.arange(K)[None, :, None]  # (1, K, 1)
    for _ in range(450):  # every step asks for a smaller T (a sharper softmax)
        optimiser.zero_grad()
        F.cross_entropy(temperature(scores), labels).backward()
        optimiser.step()
        schedule.step()
    summed = 2e-3 * sum((1 - s / 450) ** 0.9 for s in range(450))
    assert summed == pytest.approx(0.47, abs=0.005)
    assert np.exp(-summed) == pytest.approx(0.62, abs=0.005)
    assert -np.log(temperature.temperature) == pytest.approx(summed, rel=0.1)
    assert temperature.temperature == pytest.approx(0.6, abs=0.02)


def recorder(seen, key, inputs=False):
    """A forward hook that keeps a module's first input or its output under ``key``."""
    def hook(module, args, output):
        seen[key] = args[0] if inputs else output
    return hook


def test_the_logits_are_the_head_scores_over_t_cropped_not_resized(scenes):
    torch.manual_seed(0)
    model = DUpsamplingNet(K, small_encoder(), small_projection(scenes), temperature=0.25,
                           channels=16).eval()
    seen = {}
    model.head.register_forward_hook(recorder(seen, "scores"))
    logits = model(torch.randn(1, 3, 123, 157)).logits
    scores = seen["scores"]  # (1, K, 128, 160): c5 is 8 x 10 at stride 16
    assert scores.shape == (1, K, 128, 160)
    assert model.temperature == pytest.approx(0.25)
    assert torch.allclose(logits, scores[..., :123, :157] / 0.25, rtol=1e-5)


def test_the_codes_are_what_w_turns_into_the_label_patches(scenes):
    torch.manual_seed(0)
    model = DUpsamplingNet(K, small_encoder(), small_projection(scenes), channels=16).eval()
    seen = {}
    model.head[1].register_forward_hook(recorder(seen, "code", inputs=True))
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        model(images)
        codes = model.codes(images)
    assert codes.shape == (2, 8, 4, 6)                           # C~ at c5's grid, stride 16
    assert torch.equal(codes, seen["code"])
    twin = DUpsamplingNet(K, small_encoder(), None, head=conv1x1_head, channels=16)
    with pytest.raises(ValueError, match="needs the DUpsampling head.*Conv2d"):
        twin.codes(images)
    with pytest.raises(ValueError, match="float images"):
        model.codes(images.long())


def test_low_levels_are_average_pooled_to_the_last_feature(scenes):
    torch.manual_seed(0)
    model = DUpsamplingNet(K, small_encoder(), small_projection(scenes), fuse=("c3", "c2"),
                           channels=16).eval()
    assert model.fuse == ("c2", "c3")
    features = model.encoder(torch.randn(1, 3, 64, 96))
    seen = {}
    model.laterals["c2"].register_forward_hook(recorder(seen, "c2", inputs=True))
    model.decode(features)
    c2 = features["c2"]  # (1, 8, 16, 24) -> (1, 8, 4, 6): 4 x 4 blocks
    blocks = c2.view(1, 8, 4, 4, 6, 4).mean((3, 5))
    assert torch.allclose(seen["c2"], blocks, atol=1e-6)


def test_bilinear_twin_is_the_same_decoder_with_a_1x1_head(scenes):
    torch.manual_seed(0)
    twin = DUpsamplingNet(K, small_encoder(), None, head=conv1x1_head, temperature=None,
                          channels=16).eval()
    torch.manual_seed(0)
    dup_net = DUpsamplingNet(K, small_encoder(), small_projection(scenes), channels=16)
    shared = {n for n, _ in twin.named_parameters() if not n.startswith("head")}
    assert shared == {n for n, _ in dup_net.named_parameters()
                      if not n.startswith(("head", "adaptive"))}
    assert isinstance(twin.head, torch.nn.Conv2d) and twin.temperature is None
    images = torch.randn(1, 3, 64, 96)
    features = twin.encoder(images)
    logits = twin(images).logits
    assert torch.allclose(logits, F.interpolate(twin.decode(features)[0], (64, 96),
                                                mode="bilinear"), atol=1e-6)


def test_model_refuses_inconsistent_settings(scenes):
    projection = small_projection(scenes)
    with pytest.raises(ValueError, match="output_stride=16"):
        DUpsamplingNet(K, small_encoder(32), projection)
    with pytest.raises(ValueError, match="r=32"):
        DUpsamplingNet(K, small_encoder(16), small_projection(scenes, 32))
    with pytest.raises(ValueError, match="fuse"):
        DUpsamplingNet(K, small_encoder(), projection, fuse=("c5",))
    with pytest.raises(ValueError, match="fuse"):
        DUpsamplingNet(K, small_encoder(), projection, fuse=("c2", "c2"))
    with pytest.raises(ValueError, match="needs a projection"):
        DUpsamplingNet(K, small_encoder(), None)
    with pytest.raises(ValueError, match="head= replaces"):
        DUpsamplingNet(K, small_encoder(), projection, head=conv1x1_head)
    with pytest.raises(ValueError, match="fitted for 11 classes"):
        DUpsamplingNet(5, small_encoder(), projection)


# -- every variant of the experiment ----------------------------------------------------------
SMOKE = PROFILES["smoke"]
TRAIN_LABELS = SyntheticScenes(4, (48, 64), seed=0).masks % 5  # 5 classes, as the contract's


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(MODELS, "dupsampling", ModelSpec(build_dupsampling, MODEL_OPTIONS))
    monkeypatch.setattr(test_contract, "CONTEXT",
                        BuildContext(num_classes=5, profile=SMOKE, train_set=TRAIN_LABELS))


@pytest.mark.parametrize("label", list(DUPSAMPLING.variants))
def test_every_variant_keeps_the_model_contract(label, registered):
    test_contract.test_outputs_at_input_size_and_gradients_everywhere(DUPSAMPLING.variants[label])


def test_bad_images_are_refused(registered):
    test_contract.test_bad_images_are_refused_clearly("dupsampling")


def test_builder_needs_the_training_labels_and_refuses_misplaced_options():
    with pytest.raises(ValueError, match="train_set"):
        build_dupsampling(BuildContext(5, SMOKE))
    ctx = BuildContext(5, SMOKE, TRAIN_LABELS)
    with pytest.raises(ValueError, match="bilinear"):
        build_dupsampling(ctx, head="bilinear", w="learned")
    with pytest.raises(ValueError, match="w must be"):
        build_dupsampling(ctx, w="trained")
    with pytest.raises(ValueError, match="head must be"):
        build_dupsampling(ctx, head="deconv")
    model = build_dupsampling(ctx, fuse="none", components=12, temperature=2.0)
    assert model.fuse == () and model.head[1].num_components == 12 and model.temperature == 2.0
    assert build_dupsampling(ctx, head="bilinear").temperature is None


@torch.no_grad()
def decoder_flops(model, size):
    """FLOPs of ``decode`` alone (the counter of ``fusionlab.bench.count_flops``)."""
    features = model.eval().encoder(torch.zeros(1, 3, *size))
    with FlopCounterMode(display=False) as counter:
        model.decode(features)
    return counter.get_total_flops()


@pytest.mark.parametrize("label", list(DUPSAMPLING.variants))
def test_decoder_flops_match_the_layer_count(label):
    """Decoder FLOPs counted by the flop counter (2 per multiply-add, convolutions only; the
    pooling, the shuffle, the temperature and the final resize are not counted) against the
    layer shapes at the cpu profile's 120 x 160."""
    ctx = BuildContext(5, PROFILES["cpu"], TRAIN_LABELS)
    options = DUPSAMPLING.variants[label].options
    model = build_dupsampling(ctx, **options)
    stride = options.get("output_stride", 16)
    h, w = -(-120 // stride), -(-160 // stride)
    widths = dict(zip(("c2", "c3", "c4", "c5"), PROFILES["cpu"].widths))
    c, low = PROFILES["cpu"].channels, 48
    fuse = options["fuse"]
    macs = sum(widths[lv] * low for lv in fuse)  # 1x1 convolutions after pooling
    macs += 9 * (widths["c5"] + low * len(fuse)) * c + 9 * c * c  # two 3x3 convolutions
    if options.get("head") == "bilinear":
        macs += c * 5  # 1x1 to K
    else:
        macs += c * c + c * 5 * stride ** 2  # 1x1 to C~ = c, then W: C~ -> K r^2
    assert decoder_flops(model, (120, 160)) == 2 * macs * h * w
