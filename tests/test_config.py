"""Typed YAML configs: loading, overrides, one-line errors that name the key."""

import pytest
import yaml

from tfrec import families
from tfrec.config import ConfigError, RunConfig, dump_config, load_config, parse_override

ROWS, LISTS = families.get("pointwise"), families.get("preranking")


def test_defaults_are_the_paper_setting():
    cfg = load_config()
    assert cfg.model.dnn_hidden_units == [500, 500, 500] and cfg.model.num_cross_layers == 3
    assert cfg.model.embedding_dim == 10 and cfg.model.dropout == 0.1 and cfg.model.embedding_l2 == 1e-5
    assert cfg.train.learning_rate == 1e-3 and cfg.train.clip_norm == 10.0
    assert ROWS.resolve(cfg).data.batch_size == 4096
    assert cfg.train.early_stop_patience == 2 and cfg.train.plateau_factor == 0.1
    assert cfg.prepare.min_count == 10 and cfg.prepare.split_ratios == [0.7, 0.2, 0.1]


def test_batch_sizes_default_to_the_dataset_familys_unit():
    cfg = load_config()
    assert (cfg.data.batch_size, cfg.data.eval_batch_size) == (None, None)  # unset: the family decides
    rows, lists = ROWS.resolve(cfg).data, LISTS.resolve(cfg).data
    assert (rows.batch_size, rows.eval_batch_size) == (4096, 16384)  # rows, the KDD 2024 / BARS batch
    assert (lists.batch_size, lists.eval_batch_size) == (64, 64)  # requests, each tens to hundreds of items
    given = LISTS.resolve(load_config(None, ["data.batch_size=4096", "data.eval_batch_size=32"])).data
    assert (given.batch_size, given.eval_batch_size) == (4096, 32)  # a value the user set is kept
    assert cfg.data.batch_size is None  # resolve returns a copy
    with pytest.raises(ConfigError, match="`data.batch_size` must be > 0"):
        load_config(None, ["data.batch_size=0"])


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"structure": "stacked"}, "train": {"epochs": 3}}))
    cfg = load_config(str(path), ["train.epochs=5", "model.dnn_hidden_units=[8, 4]", "train.learning_rate=1e-2",
                                  "loss.params={beta_pos: 0.5}"])
    assert cfg.model.structure == "stacked" and cfg.train.epochs == 5
    assert cfg.model.dnn_hidden_units == [8, 4] and cfg.train.learning_rate == 0.01
    assert cfg.loss.params == {"beta_pos": 0.5}
    assert isinstance(load_config(None, ["train.learning_rate=1"]).train.learning_rate, float)


def test_every_loss_by_name_and_params_merge(tmp_path):
    from tfrec import losses

    for name in losses.names():
        assert load_config(None, [f"loss.name={name}", "model.head=" + ("jrc" if name == "jrc" else "binary")
                                  ]).loss.name == name
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"loss": {"name": "combined_pair", "params": {"alpha": 0.5, "pairing": "global"}}}))
    cfg = load_config(str(path), ["loss.params.alpha=0.7"])
    assert cfg.loss.params == {"alpha": 0.7, "pairing": "global"}
    assert load_config(str(path), ["loss.params={}"]).loss.params == {}
    with pytest.raises(ConfigError, match="`loss`: .*alpha"):
        load_config(str(path), ["loss.params.alpha=1.5"])


def test_round_trip(tmp_path):
    cfg = load_config(None, ["model.structure=stacked", "prepare.beta_pos=0.2"])
    dump_config(cfg, str(tmp_path / "out.yaml"))
    assert load_config(str(tmp_path / "out.yaml")) == cfg


@pytest.mark.parametrize("override, needle", [
    ("train.epochz=3", "unknown config key `train.epochz`"),
    ("nosection.x=1", "unknown config key `nosection`"),
    ("train.epochs=three", "`train.epochs` must be an integer"),
    ("train.epochs=0", "`train.epochs` must be > 0"),
    ("model.structure=diagonal", "`model.structure` must be parallel or stacked"),
    ("prepare.beta_pos=1.5", "`prepare.beta_pos` must be in (0, 1]"),
    ("prepare.split_ratios=[0.5, 0.5]", "`prepare.split_ratios`"),
    ("model.dnn_hidden_units=5", "`model.dnn_hidden_units` must be a list"),
    ("loss.name=nope", "unknown loss 'nope'"),
    ("loss.params={gamma: 2}", "no argument 'gamma'"),
    ("loss.params={beta_pos: 2}", "`loss`: `beta_pos` must be in (0, 1]"),
    ("loss.name=jrc", "`model.head` must be jrc when loss.name is jrc"),
    ("train.epochs", "must look like section.key=value"),
    ("model.batch_norm=maybe", "must be true or false"),
])
def test_errors_are_one_line_and_name_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(str(scalar))


def test_parse_override_nesting():
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
    assert parse_override("a=") == {"a": ""}
    assert isinstance(RunConfig().to_dict()["train"], dict)
