"""Transfer strategies on tiny data: each runs, lr groups, frozen layers stay frozen, determinism."""

import math
from dataclasses import replace

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from dlatoms.finetune.data import training_subset, validation_split
from dlatoms.finetune.strategies import STRATEGIES, check_strategy, run_strategy
from dlatoms.finetune.training import (
    FINAL,
    Run,
    Schedule,
    Selection,
    Split,
    extract_features,
    fit_probe,
    last_stages_parameters,
    normalize,
    parameter_groups,
    seeded_model,
    split_frozen_prefix,
    train_network,
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
        assert row["epochs_run"] == (0 if probe else 2)  # without a validation split too (a table column)
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


# --- selection on a validation split, and features computed once per job -----------------------------


def pooled_run(weights, seed=0, epochs=4, patience=None, test=None, pool=True, cache=None) -> Run:
    """A Run as the jobs build it: splits drawn from one pool, a validation split, a shared cache."""
    pool_split = tiny_split(10, seed=1)
    labels = pool_split.labels.numpy()
    chosen = training_subset(labels, 8, seed)
    train, validation = validation_split(labels[chosen], 0.25, seed)
    rows = {"train": chosen[train], "train_eval": chosen[train], "validation": chosen[validation]}
    run = make_run(weights, seed=seed, epochs=epochs)
    return replace(
        run,
        train=pool_split.subset(rows["train"]),
        train_eval=pool_split.subset(rows["train_eval"]),
        validation=pool_split.subset(rows["validation"]),
        test=test if test is not None else run.test,
        schedule=replace(run.schedule, patience=patience),
        pool=pool_split if pool else None,
        rows=rows if pool else {},
        cache={} if cache is None else cache,
    )


def test_validation_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(3), 10)
    train, validation = validation_split(labels, 0.2, seed=0)
    assert np.bincount(labels[validation]).tolist() == [2, 2, 2]
    assert not set(train) & set(validation) and len(train) + len(validation) == 30
    again = validation_split(labels, 0.2, seed=0)[1]
    other = validation_split(labels, 0.2, seed=1)[1]
    assert np.array_equal(validation, again) and not np.array_equal(validation, other)
    assert len(validation_split(np.repeat(np.arange(3), 2), 0.1, seed=0)[1]) == 3  # at least one per class
    assert len(validation_split(labels, 0.0, seed=0)[1]) == 0


@pytest.mark.parametrize("arm", ["scratch", "finetune_all", "finetune_last", "probe_then_finetune"])
def test_trained_arms_keep_the_epoch_with_the_best_validation_score(weights, arm):
    rows = run_strategy(pooled_run(weights), SPECS[arm])
    validation = [r for r in rows if r["split"] == "validation"]
    assert [r["epoch"] for r in validation] == list(range(5))
    best = max(validation, key=lambda r: (r["accuracy"], -r["loss"], -r["epoch"]))
    scored = [r for r in rows if r["split"] != "validation"]
    assert [(r["split"], r["epoch"]) for r in scored] == [("train", best["epoch"]), ("test", best["epoch"])]
    assert all(r["epochs_run"] == 4 for r in rows)


def test_the_test_split_selects_nothing(weights):
    """Other test images (labels shuffled) change the test scores only, never what was selected."""
    shuffled = tiny_split(4, seed=2)
    shuffled.labels = shuffled.labels[
        torch.randperm(len(shuffled), generator=torch.Generator().manual_seed(0))
    ]
    for arm in ("finetune_all", "probe_cv_validation"):
        spec = SPECS.get(arm, {"name": "linear_probe", "stage": FINAL, "C": [0.001, 0.1, 10.0]})
        first = run_strategy(pooled_run(weights), spec)
        other = run_strategy(pooled_run(weights, test=shuffled), spec)
        keep = [
            (r["split"], r["epoch"], r["accuracy"], r.get("probe_c")) for r in first if r["split"] != "test"
        ]
        assert keep == [
            (r["split"], r["epoch"], r["accuracy"], r.get("probe_c")) for r in other if r["split"] != "test"
        ]


def test_patience_stops_a_network_that_does_not_improve(weights):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, CLASSES))
    groups = [{"params": list(model.parameters()), "lr": 0.0}]  # no step changes anything
    rows = train_network(model, groups, pooled_run(weights, epochs=10, patience=2))
    validation = [r for r in rows if r["split"] == "validation"]
    assert [r["epoch"] for r in validation] == [0, 1, 2]
    assert rows[-1]["epochs_run"] == 2 and rows[-1]["epoch"] == 0
    rows = train_network(model, groups, pooled_run(weights, epochs=10, patience=None))
    assert rows[-1]["epochs_run"] == 10


def test_selection_prefers_accuracy_then_loss_then_the_earlier_epoch():
    model = nn.Linear(1, 1)
    selection = Selection()
    offers = [(0, 0.5, 1.0), (1, 0.7, 2.0), (2, 0.7, 1.5), (3, 0.7, 1.5), (4, 0.6, 0.1)]
    kept = [selection.offer(epoch, accuracy, loss, model) for epoch, accuracy, loss in offers]
    assert kept == [True, True, True, False, False]
    assert selection.epoch == 2 and selection.since == 2


def test_probe_picks_c_on_the_validation_split():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    features = rng.normal(size=(40, 5)) + labels[:, None] * 0.8
    val_labels = np.repeat([0, 1], 10)
    val_features = rng.normal(size=(20, 5)) + val_labels[:, None] * 0.8
    scores = {c: fit_probe(features, labels, c, seed=0).score(val_features, val_labels) for c in (1e-4, 1.0)}
    expected = min(scores, key=lambda c: (-scores[c][0], scores[c][1], c))
    chosen = fit_probe(features, labels, [1e-4, 1.0], seed=0, validation=(val_features, val_labels))
    assert chosen.C == expected
    # The validation split decides: with its labels flipped, the other C wins.
    flipped = fit_probe(features, labels, [1e-4, 1.0], seed=0, validation=(val_features, 1 - val_labels))
    assert flipped.C != expected or scores[1e-4][0] == scores[1.0][0]


@pytest.mark.parametrize("arm", ["finetune_last", "probe_final", "probe_early", "probe_then_finetune"])
def test_features_computed_once_give_what_each_seed_would_compute(weights, arm):
    """Frozen features and frozen-prefix activations of the pool, reused per seed, change no result."""

    def scores(rows):
        return [(r["split"], r["epoch"], round(r["accuracy"], 6), round(r["loss"], 4)) for r in rows]

    cache: dict = {}
    cached = [run_strategy(pooled_run(weights, seed, cache=cache), SPECS[arm]) for seed in (0, 1)]
    direct = [run_strategy(pooled_run(weights, seed, pool=False), SPECS[arm]) for seed in (0, 1)]
    assert cache, "the pool's features were not cached"
    for with_cache, without in zip(cached, direct, strict=True):
        assert scores(with_cache) == scores(without)


def test_the_frozen_prefix_split_reproduces_the_model(weights):
    model = load_pretrained(MODEL, weights, CLASSES)
    images = tiny_split(2, seed=0).images
    trainable = set(last_stages_parameters(model, 1))
    parameter_groups(model, trainable, 1e-3, 1.0)
    prefix, tail = split_frozen_prefix(model, "layer4", images)
    with torch.no_grad():
        torch.testing.assert_close(tail(prefix(images)), model.eval()(images))
    assert split_frozen_prefix(model, "conv1", images) is None  # nothing before it to cache
    unfrozen = load_pretrained(MODEL, weights, CLASSES)
    assert split_frozen_prefix(unfrozen, "layer4", images) is None  # a trainable prefix cannot be cached


TRAINED_ARMS = ["scratch", "finetune_last", "finetune_all", "probe_then_finetune"]


@pytest.mark.parametrize("pool", [True, False])
def test_every_trained_arm_trains_under_the_same_schedule(weights, monkeypatch, pool):
    """No strategy changes the size's cap, eval_every or patience: every trained arm has the same budget."""
    import dlatoms.finetune.strategies as strategies

    schedules = []
    monkeypatch.setattr(
        strategies, "train_network", lambda model, groups, run: schedules.append(run.schedule) or []
    )
    run = pooled_run(weights, epochs=7, patience=3, pool=pool)
    for arm in TRAINED_ARMS:
        run_strategy(run, SPECS[arm])
    assert schedules == [Schedule(epochs=7, batch_size=8, eval_every=1, patience=3)] * len(TRAINED_ARMS)


def test_a_budget_of_its_own_is_no_strategy_parameter():
    for name in STRATEGIES:
        with pytest.raises(ValueError, match=rf"s\.epoch_factor: strategy '{name}' has no parameter"):
            check_strategy({"name": name, "epoch_factor": 3}, "s")
