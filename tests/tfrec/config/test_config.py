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
    assert cfg.prepare.min_count is None and cfg.prepare.split_ratios == [0.7, 0.2, 0.1]  # null: the format's
    assert cfg.prepare.with_format_defaults(["kaggle"]).min_count == 10


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
                                  "model.loss.params={beta_pos: 0.5}"])
    assert cfg.model.structure == "stacked" and cfg.train.epochs == 5
    assert cfg.model.dnn_hidden_units == [8, 4] and cfg.train.learning_rate == 0.01
    assert cfg.model.loss.params == {"beta_pos": 0.5}
    assert isinstance(load_config(None, ["train.learning_rate=1"]).train.learning_rate, float)


def test_every_loss_by_name_and_params_merge(tmp_path):
    from tfrec import losses

    for name in losses.names():
        assert load_config(None, [f"model.loss.name={name}", "model.head=" + ("jrc" if name == "jrc" else "binary")
                                  ]).model.loss.name == name
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"loss": {"name": "combined_pair",
                                                       "params": {"alpha": 0.5, "pairing": "global"}}}}))
    cfg = load_config(str(path), ["model.loss.params.alpha=0.7"])
    assert cfg.model.loss.params == {"alpha": 0.7, "pairing": "global"}
    assert load_config(str(path), ["model.loss.params={}"]).model.loss.params == {}
    with pytest.raises(ConfigError, match="`model.loss`: .*alpha"):
        load_config(str(path), ["model.loss.params.alpha=1.5"])


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
    ("model.loss.name=nope", "unknown loss 'nope'"),
    ("model.loss.params={gamma: 2}", "no argument 'gamma'"),
    ("model.loss.params={beta_pos: 2}", "`model.loss`: `beta_pos` must be in (0, 1]"),
    ("model.loss.name=jrc", "`model.head` must be jrc when model.loss.name is jrc"),
    ("model.dropout=1.5", "`model.dropout` must be in [0, 1). Received: model.dropout=1.5"),
    ("model.dnn_hidden_units=[8, 0]", "`model.dnn_hidden_units[1]` must be > 0"),
    ("model.name=gbdt", "`model.name` must be one of dcn_v2, shared_bottom, mmoe, ple, esmm, single_task, three_tower"),
    ("model.num_experts=4", "unknown config key `model.num_experts`; known keys in this section: ['batch_norm',"),
    ("model.loss.lam=0.1", "unknown config key `model.loss.lam`; known keys in this section: ['name', 'params']"),
    ("train.verbose=3", "`train.verbose` must be one of 0, 1, 2"),
    ("train.epochs", "must look like section.key=value"),
    ("model.batch_norm=maybe", "must be true or false"),
    ("taobao.history=cookies", "`taobao.history` must be one of auto, behavior, clicks, sequence"),
    ("taobao.test_days=[3]", "`taobao.test_days` must not share days with taobao.train_days"),
    ("taobao.first_day=May", "`taobao.first_day` must be a date YYYY-MM-DD"),
    ("taobao.utc_offset_hours=20", "`taobao.utc_offset_hours` must be in [-12, 14]"),
    ("taobao_sim.ads=4", "`taobao_sim.ads` must be >= 2 * taobao_sim.max_per_request"),
    ("taobao_sim.null_brand_rate=1", "`taobao_sim.null_brand_rate` must be in [0, 1)"),
    ("din.activation=relu", "`din.activation` must be dice or prelu"),
    ("din.hidden_units=[]", "`din.hidden_units` must have at least 1 item(s)"),
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


@pytest.mark.parametrize("overrides, needle", [
    (["model.name=mmoe", "model.structure=stacked"], "unknown config key `model.structure`"),
    (["model.name=three_tower", "model.variant=best"], "`model.variant` must be one of base, base_listnet"),
    (["model.name=three_tower", "model.loss.task_weights=[1.0]"], "`model.loss.task_weights` must be one weight"),
    (["model.name=three_tower", "model.loss.temperature=0"], "`model.loss.temperature` must be > 0"),
    (["model.name=mmoe", "model.loss.space=rank"], "`model.loss.space` must be probability or logit"),
    (["preranking.hit_ks=[]"], "`preranking.hit_ks` must have at least 1 item"),
])
def test_each_model_has_its_own_section(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_switching_the_model_keeps_the_shared_settings_that_were_set():
    cfg = load_config(None, ["model.name=mmoe", "model.embedding_dim=8", "model.num_experts=3",
                             "model.loss.pwiser_tasks=[ctr]", "model.name=ple", "model.num_levels=1"])
    assert (cfg.model.name, cfg.model.embedding_dim, cfg.model.num_levels) == ("ple", 8, 1)
    assert cfg.model.loss.pwiser_tasks == ["ctr"] and cfg.model.expert_units == [64]
    # A model's defaults are its own: DCN V2's embedding_dim 10 does not become the Three-Tower model's.
    assert load_config(None, ["model.name=three_tower"]).model.embedding_dim == 16
    assert load_config(None, ["model.dropout=0.2"]).model.name == "dcn_v2"  # no name: DCN V2
    # Set before the name: kept when the new model has the key, dropped when it does not (as the flat section did).
    early = load_config(None, ["model.tower_units=[8]", "model.bottom_units=[8]", "model.expert_units=[8]",
                               "model.name=shared_bottom"]).model
    assert (early.tower_units, early.bottom_units) == ([8], [8]) and not hasattr(early, "expert_units")
    again = load_config(None, ["model.bottom_units=[8]", "model.name=shared_bottom", "model.bottom_units=[4]",
                               "model.expert_units=[8]", "model.name=shared_bottom"]).model
    assert again.bottom_units == [4] and not hasattr(again, "expert_units")
    with pytest.raises(ConfigError, match="unknown config key `model.expert_units`"):
        load_config(None, ["model.name=shared_bottom", "model.expert_units=[8]"])


def test_old_keys_still_work_with_one_deprecation_line(tmp_path, capsys):
    old = load_config(None, ["loss.name=combined_pair", "loss.params={alpha: 0.5}"])
    assert (old.model.loss.name, old.model.loss.params) == ("combined_pair", {"alpha": 0.5})
    mt = load_config(None, ["model.name=mmoe", "model.pwiser_tasks=[ctr, cvr]", "model.pwiser_lambda=0.3",
                            "model.pwiser_m1=0.05", "model.pwiser_pairing=global"])
    assert mt.model.loss == load_config(None, ["model.name=mmoe", "model.loss.pwiser_tasks=[ctr, cvr]",
                                               "model.loss.lam=0.3", "model.loss.m1=0.05",
                                               "model.loss.pairing=global"]).model.loss
    path = tmp_path / "hccp.yaml"
    path.write_text(yaml.safe_dump({"preranking": {"variant": "wo_up", "hash_bins": 256, "task_weights": [1, 1, 1],
                                                   "train_list_size": 24}}))
    tt = load_config(str(path))
    assert (tt.model.name, tt.model.variant, tt.model.hash_bins) == ("three_tower", "wo_up", 256)
    assert tt.model.loss.task_weights == [1.0, 1.0, 1.0] and tt.preranking.train_list_size == 24
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert err[0] == ("tfrec: deprecated config keys in --set: loss.name -> model.loss.name; the old keys are read "
                      "for one more release")
    assert any("model.pwiser_lambda -> model.loss.lam" in line for line in err)
    assert err[-1] == (f"tfrec: deprecated config keys in {path}: preranking.hash_bins -> model.hash_bins, "
                       "preranking.variant -> model.variant, preranking.task_weights -> model.loss.task_weights; "
                       "the old keys are read for one more release")
    with pytest.raises(ConfigError, match="`loss.name` must stay weighted_bce for model 'mmoe'"):
        load_config(None, ["model.name=mmoe", "loss.name=rank_net"])


def test_a_config_yaml_of_the_previous_release_reads(tmp_path):
    from tfrec.config.legacy import OLD_MODEL, OLD_THREE_TOWER, OLD_THREE_TOWER_LOSS

    # As `tfrec train` of the previous release wrote it: every key of every section.
    dump = {"model": {**OLD_MODEL, "name": "mmoe", "pwiser_tasks": ["ctr"], "num_experts": 6},
            "loss": {"name": "weighted_bce", "params": {}},
            "preranking": {**OLD_THREE_TOWER, **OLD_THREE_TOWER_LOSS, "train_list_size": 48, "eval_list_size": 512,
                           "hit_ks": [10], "consistency_ks": [10], "octile_k": 100}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dump))
    cfg = load_config(str(path))
    assert (cfg.model.name, cfg.model.num_experts, cfg.model.loss.pwiser_tasks) == ("mmoe", 6, ["ctr"])
    assert cfg.preranking.hit_ks == [10]


def test_a_preranking_config_yaml_of_the_previous_release_reads(tmp_path, capsys):
    from tfrec.config.legacy import OLD_MODEL, OLD_THREE_TOWER, OLD_THREE_TOWER_LOSS

    # A COPR run of the previous release: its beta schedule, COPR weights and Taobao sections in the old layout.
    dump = {"model": dict(OLD_MODEL), "loss": {"name": "weighted_bce", "params": {}},
            "preranking": {**OLD_THREE_TOWER, **OLD_THREE_TOWER_LOSS, "variant": "copr", "tasks": ["click"],
                           "task_weights": [0.98], "beta_final": 0.1, "copr_weight": 0.5, "copr_relax_units": [8],
                           "train_list_size": 32, "eval_list_size": 32, "hit_ks": [2, 5], "consistency_ks": [10],
                           "octile_k": 100},
            "taobao": {"max_history": 20}, "din": {"max_history": 20}, "taobao_sim": {"impressions": 1000}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dump))
    cfg = load_config(str(path))
    m = cfg.model
    assert (m.name, m.variant, m.tasks, m.loss.task_weights) == ("three_tower", "copr", ["click"], [0.98])
    assert (m.loss.beta_final, m.loss.beta_final_at, m.loss.beta_scale) == (0.1, None, None)
    assert (m.loss.copr_weight, m.loss.copr_relax_units, m.loss.rethink_weight) == (0.5, [8], 1.0)
    assert (cfg.preranking.hit_ks, cfg.taobao.max_history, cfg.din.max_history) == ([2, 5], 20, 20)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "preranking.copr_relax_units -> model.loss.copr_relax_units" in err[0], err
    assert "preranking.beta_scale" not in err[0]  # a previous default is dropped silently


def test_the_previous_release_helpers_still_work(tmp_path, capsys):
    from tfrec.config import apply_config, apply_values

    cfg = RunConfig()
    apply_values(cfg, {"data": {"batch_size": 32}, "loss": {"name": "rank_net"}})
    assert cfg.data.batch_size == 32 and cfg.model.loss.name == "rank_net"
    assert cfg.loss.name == "rank_net"  # RunConfig.loss reads model.loss
    apply_values(cfg.train, {"epochs": 3}, "train.")
    assert cfg.train.epochs == 3
    with pytest.raises(ConfigError, match=r"^`train.epochs` must be > 0. Received: train.epochs=-1$"):
        apply_values(cfg.train, {"epochs": -1}, "train.")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": 4}}))
    same = RunConfig()
    assert apply_config(same, str(path), ["model.dropout=0.2"]) is same
    assert (same.train.epochs, same.model.dropout) == (4, 0.2)
    assert load_config(None, ["model.name=mmoe"]).loss.name == "weighted_bce"
    assert "RunConfig.loss is now RunConfig.model.loss" in capsys.readouterr().err
