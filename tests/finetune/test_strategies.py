"""Transfer strategies on tiny data: each runs, lr groups, frozen layers stay frozen, determinism."""

import math

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from dlatoms.finetune.strategies import STRATEGIES, check_strategy, run_strategy
from dlatoms.finetune.training import (
    FINAL,
    Run,
    Schedule,
    Split,
    extract_features,
    fit_probe,
    last_stages_parameters,
    normalize,
    parameter_groups,
    seeded_model,
)
from dlatoms.finetune.weights import load_pretrained

MODEL = "test_resnet"
CLASSES = 3
SIZE = 16


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    source = timm.create_model(MODEL, num_classes=5)
    path = tmp_path_factory.mktemp("weights") / "source.safetensors"
    save_file(source.state_dict(), path)
    return path


def tiny_split(count: int, seed: int) -> Split:
    """Class c: images whose colour channel c is bright; learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(CLASSES), count)
    images = rng.integers(0, 100, size=(len(labels), 3, SIZE, SIZE)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, label] += 120
    return Split(normalize(images, (0.5,) * 3, (0.5,) * 3), torch.from_numpy(labels))


def make_run(weights, seed=0, epochs=2, models=None) -> Run:
    """A Run on tiny data; every model it builds is appended to `models` (to inspect it afterwards)."""
    train = tiny_split(6, seed=1)

    def new_model(pretrained):
        if pretrained:
            model = seeded_model(lambda: load_pretrained(MODEL, weights, CLASSES), seed)
        else:
            model = seeded_model(lambda: timm.create_model(MODEL, num_classes=CLASSES), seed)
        if models is not None:
            models.append(model)
        return model

    return Run(
        train=train,
        train_eval=train,
        test=tiny_split(4, seed=2),
        num_classes=CLASSES,
        schedule=Schedule(epochs=epochs, batch_size=8, eval_every=1),
        seed=seed,
        device=torch.device("cpu"),
        new_model=new_model,
        label="test",
    )


SPECS = {
    "scratch": {"name": "scratch", "lr": 3e-3},
    "probe_final": {"name": "linear_probe", "stage": FINAL},
    "probe_early": {"name": "linear_probe", "stage": 2, "pool": 2},
    "probe_cv": {"name": "linear_probe", "stage": FINAL, "C": [0.1, 1.0]},
    "finetune_last": {"name": "finetune_last", "lr": 3e-3},
    "finetune_all": {"name": "finetune_all", "lr": 3e-3, "backbone_lr_factor": 0.1},
    "probe_then_finetune": {"name": "probe_then_finetune", "lr": 3e-3},
}


@pytest.mark.parametrize("arm", list(SPECS))
def test_every_strategy_runs(weights, arm):
    rows = run_strategy(make_run(weights), SPECS[arm])
    probe = SPECS[arm]["name"] == "linear_probe"
    assert [(r["epoch"], r["split"]) for r in rows] == (
        [(0, "train"), (0, "test")] if probe else [(e, s) for e in range(3) for s in ("train", "test")]
    )
    for row in rows:
        assert 0 <= row["accuracy"] <= 1 and math.isfinite(row["loss"]) and row["train_time_s"] >= 0
    if probe:
        assert math.isnan(rows[0]["lr"]) and rows[0]["probe_c"] > 0
    else:
        assert rows[0]["lr"] == 3e-3


def test_registry_covers_the_design():
    assert set(STRATEGIES) == {
        "scratch",
        "linear_probe",
        "finetune_last",
        "finetune_all",
        "probe_then_finetune",
    }


def test_training_learns_the_tiny_task(weights):
    run = make_run(weights, epochs=15)
    rows = run_strategy(run, SPECS["finetune_all"])
    train = [r for r in rows if r["split"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"]
    assert train[-1]["accuracy"] > 0.8


def test_finetune_all_gives_pretrained_layers_a_tenth_of_the_lr(weights):
    model = load_pretrained(MODEL, weights, CLASSES)
    groups = parameter_groups(model, None, lr=3e-3, backbone_lr_factor=0.1)
    head, backbone = groups
    assert head["lr"] == 3e-3 and backbone["lr"] == pytest.approx(3e-4)
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    assert {id(p) for p in head["params"]} == head_ids
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.parameters()} - head_ids
    assert all(p.requires_grad for p in model.parameters())


def state_copy(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_finetune_last_changes_only_the_last_stage_and_head(weights):
    models = []
    run_strategy(make_run(weights, models=models), SPECS["finetune_last"])
    [model] = models
    fresh = load_pretrained(MODEL, weights, CLASSES)
    trained_names = set(last_stages_parameters(fresh, 1))
    assert trained_names and all(n.startswith(("layer4.", "fc.")) for n in trained_names)
    after, before = model.state_dict(), fresh.state_dict()
    for key in before:
        if key.startswith(("layer4.", "fc.")):
            continue
        # Frozen layers: weights and BatchNorm running statistics unchanged.
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
    assert not torch.equal(after["layer4.0.bn1.running_mean"], before["layer4.0.bn1.running_mean"])


@pytest.mark.parametrize("arm", ["probe_final", "probe_early"])
def test_linear_probe_leaves_the_network_untouched(weights, arm):
    models = []
    run_strategy(make_run(weights, models=models), SPECS[arm])
    [model] = models
    fresh = load_pretrained(MODEL, weights, CLASSES)
    for key, value in fresh.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(model.state_dict()[key], value), key


def test_probe_as_head_reproduces_the_probe(weights):
    """probe_then_finetune starts from a network whose head computes exactly the probe's logits."""
    run = make_run(weights)
    model = load_pretrained(MODEL, weights, CLASSES)
    features = extract_features(model, run.train.images, [FINAL], pool=1)[FINAL]
    probe = fit_probe(features, run.train.labels.numpy(), C=1.0, seed=0)
    weight, bias = probe.as_linear()
    with torch.no_grad():
        model.get_classifier().weight.copy_(weight)
        model.get_classifier().bias.copy_(bias)
        logits = model.eval()(run.train.images)
    np.testing.assert_allclose(logits.double().numpy(), probe.logits(features), rtol=1e-4, atol=1e-4)
    rows = run_strategy(run, SPECS["probe_then_finetune"])
    assert rows[0]["accuracy"] == pytest.approx(probe.score(features, run.train.labels.numpy())[0])


def test_early_probe_pools_to_a_grid(weights):
    model = load_pretrained(MODEL, weights, CLASSES)
    images = tiny_split(2, seed=0).images
    features = extract_features(model, images, [1, 2, FINAL], pool=2)
    channels = [info["num_chs"] for info in model.feature_info]
    assert features[1].shape == (len(images), channels[1] * 4)
    assert features[2].shape == (len(images), channels[2] * 4)
    assert features[FINAL].shape == (len(images), model.num_features)


@pytest.mark.parametrize("arm", ["scratch", "finetune_all", "probe_early"])
def test_same_seed_same_rows_other_seed_other_rows(weights, arm):
    def without_time(rows):
        return [{k: v for k, v in row.items() if k != "train_time_s"} for row in rows]

    first = without_time(run_strategy(make_run(weights, seed=3), SPECS[arm]))
    again = without_time(run_strategy(make_run(weights, seed=3), SPECS[arm]))
    assert first == again
    if arm != "probe_early":  # the probe's only randomness is the training subset, fixed here
        other = without_time(run_strategy(make_run(weights, seed=4), SPECS[arm]))
        assert other != first


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "finetune_everything"}, r"s.name: unknown strategy 'finetune_everything'"),
        ({"name": "scratch", "stage": 2}, r"s.stage: strategy 'scratch' has no parameter 'stage'"),
        ({"name": "finetune_all", "lr": -1}, r"s.lr must be > 0"),
        ({"name": "linear_probe", "C": []}, r"s.C must be a number > 0 or a non-empty list"),
        ({"name": "linear_probe", "stage": "middle"}, r"s.stage must be 'final' or a stage index"),
        ({"name": "finetune_last", "stages": 0}, r"s.stages must be an integer >= 1"),
    ],
)
def test_bad_strategy_is_named(spec, message):
    with pytest.raises(ValueError, match=message):
        check_strategy(spec, "s")
