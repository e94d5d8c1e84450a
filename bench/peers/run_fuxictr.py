"""FuxiCTR's worker of ``bench/bench_peers.py``: DCNv2 (parallel, full-rank CrossNetV2) in PyTorch on the CPU.

``prepare`` is FuxiCTR's own path from CSV to training input: ``FeatureProcessor`` + ``build_dataset`` (polars
reads and fits, Ray Data encodes, parquet out). Numeric fields: ``sign(x) log(1+|x|)`` (a preprocess method, the
way FuxiCTR's Criteo processor adds its own) then FuxiCTR's ``MinMaxScaler`` (``(v - min) / (max - min)`` on
train, not clipped); missing values are filled with 0 first. Categorical fields: FuxiCTR's tokenizer with
``min_categr_count`` = 10; a missing value is its ``na_value`` and, like rare and unseen values, gets the OOV id.

FuxiCTR's PyPI wheel carries the library (layers, ``BaseModel`` with its fit / evaluate loop, data loaders) but not
the model zoo, so :class:`DCNv2` is the zoo's parallel DCNv2 written from those layers: ``FeatureEmbedding``
(numeric fields embedded as ``v_j e_j``), ``CrossNetV2``, ``MLP_Block`` and one ``nn.Linear`` on the
concatenation. The embedding L2 is FuxiCTR's ``(lambda / 2) ||w||^2``, so lambda = 2e-5 is tfrec's 1e-5.

Runs in the FuxiCTR virtualenv. Usage (the driver calls it):
    python bench/peers/run_fuxictr.py prepare --raw DIR --out DIR --result prep.json
    python bench/peers/run_fuxictr.py train --data DIR --model-dir DIR --seed 2020 --epochs 3 --result out.json
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from fuxictr.preprocess import FeatureProcessor, build_dataset  # noqa: E402

from bench.peers.common import (ARCH, CATEGORICAL, DENSE, LABEL, StepClock, raw_files, sgemm_gflops,  # noqa: E402
                                test_report, write_json)

DATASET_ID = "criteo_bench"


def params(data_root: str, model_dir: str = "", seed: int = 2020, epochs: int = 1) -> dict:
    """FuxiCTR's experiment parameters (what its YAML config would hold) for the BARS DCN V2 setting."""
    return {
        "dataset_id": DATASET_ID, "data_root": data_root, "data_format": "csv", "min_categr_count": ARCH["min_count"],
        "feature_cols": [
            {"name": DENSE, "active": True, "dtype": "float", "type": "numeric", "preprocess": "signed_log",
             "normalizer": "MinMaxScaler"},
            {"name": CATEGORICAL, "active": True, "dtype": "str", "type": "categorical"}],
        "label_col": {"name": LABEL, "dtype": "float"},
        "model": "DCNv2", "model_root": model_dir, "task": "binary_classification", "loss": "binary_crossentropy",
        "metrics": ["logloss", "AUC"], "monitor": "AUC", "monitor_mode": "max", "optimizer": "adam",
        "learning_rate": ARCH["learning_rate"], "batch_size": ARCH["batch_size"], "epochs": epochs, "seed": seed,
        "embedding_dim": ARCH["embedding_dim"], "embedding_regularizer": ARCH["embedding_l2"],
        "net_regularizer": 0, "num_cross_layers": ARCH["num_cross_layers"],
        "parallel_dnn_hidden_units": ARCH["dnn_hidden_units"], "dnn_activations": "relu",
        "net_dropout": ARCH["dropout"], "batch_norm": False, "max_gradient_norm": ARCH["clip_norm"],
        "early_stop_patience": 2, "shuffle": True, "save_best_only": True, "verbose": 0, "gpu": -1,
    }


class Processor(FeatureProcessor):
    """FuxiCTR's feature processor with one more numeric preprocess, named in ``feature_cols``.

    Defined at module level: FuxiCTR pickles its processor, and Ray ships its ``transform`` to the workers.
    """

    def signed_log(self, col):
        return pl.col(col).sign() * pl.col(col).abs().log1p()


def prepare(raw_dir: str, out: str) -> dict:
    p = params(out)
    files = raw_files(raw_dir)
    p.update(train_data=files["train"], valid_data=files["valid"], test_data=files["test"])
    encoder = Processor(**p)
    train, valid, test = build_dataset(encoder, **p)
    return {"train": train, "valid": valid, "test": test}


def build_model_class():
    import torch
    from torch import nn
    from fuxictr.pytorch.layers import CrossNetV2, FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel

    class DCNv2(BaseModel):
        """Parallel DCN V2: ``fc([CrossNetV2(x0) ; MLP(x0)])`` over the flattened field embeddings ``x0``."""

        def __init__(self, feature_map, model_id="DCNv2", gpu=-1, learning_rate=1e-3, embedding_dim=10,
                     parallel_dnn_hidden_units=(), dnn_activations="ReLU", num_cross_layers=3, net_dropout=0.0,
                     batch_norm=False, embedding_regularizer=None, net_regularizer=None, **kwargs):
            super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                             net_regularizer=net_regularizer, **kwargs)
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            input_dim = feature_map.sum_emb_out_dim()
            self.crossnet = CrossNetV2(input_dim, num_cross_layers)
            self.parallel_dnn = MLP_Block(input_dim=input_dim, output_dim=None,
                                          hidden_units=list(parallel_dnn_hidden_units),
                                          hidden_activations=dnn_activations, output_activation=None,
                                          dropout_rates=net_dropout, batch_norm=batch_norm)
            self.fc = nn.Linear(input_dim + list(parallel_dnn_hidden_units)[-1], 1)
            self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            x0 = self.embedding_layer(self.get_inputs(inputs), flatten_emb=True)
            h = torch.cat([self.crossnet(x0), self.parallel_dnn(x0)], dim=-1)
            return {"y_pred": self.output_activation(self.fc(h))}

    return DCNv2


def train(data_dir: str, model_dir: str, seed: int, epochs: int, warmup_steps: int) -> dict:
    start = time.perf_counter()
    from fuxictr.features import FeatureMap
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything

    p = params(data_dir, model_dir, seed, epochs)
    dataset_dir = os.path.join(data_dir, DATASET_ID)
    p.update(data_format="parquet", train_data=os.path.join(dataset_dir, "train.parquet"),
             valid_data=os.path.join(dataset_dir, "valid.parquet"),
             test_data=os.path.join(dataset_dir, "test.parquet"))
    seed_everything(seed=seed)
    feature_map = FeatureMap(DATASET_ID, dataset_dir)
    feature_map.load(os.path.join(dataset_dir, "feature_map.json"), p)
    model = build_model_class()(feature_map, **p)
    os.makedirs(model.model_dir, exist_ok=True)  # FuxiCTR's run script makes it (set_logger)
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", **p)

    clock = StepClock(warmup_steps)
    step = model.train_step

    def timed_step(batch):
        if model._batch_index == 0:
            clock.epoch_begin()
        loss = step(batch)
        clock.step_end(int(batch[LABEL].shape[0]))
        return loss

    model.train_step = timed_step
    model.fit(train_gen, validation_data=valid_gen, **p)  # reloads the best epoch's weights at the end
    trained = time.perf_counter()
    test_gen = RankDataLoader(feature_map, stage="test", **p)
    probs, labels = predict(model, test_gen)
    return {"library": "fuxictr", "seed": seed, "epochs": epochs, "train": clock.summary(),
            "test": test_report(labels, probs),
            "seconds": {"setup_and_train": trained - start, "predict_test": time.perf_counter() - trained}}


def predict(model, generator):
    import torch

    model.eval()
    probs, labels = [], []
    with torch.no_grad():
        for batch in generator:
            probs.append(model.forward(batch)["y_pred"].cpu().numpy().reshape(-1))
            labels.append(model.get_labels(batch).cpu().numpy().reshape(-1))
    return np.concatenate(probs), np.concatenate(labels)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["prepare", "train", "versions"])
    ap.add_argument("--raw")
    ap.add_argument("--out")
    ap.add_argument("--data")
    ap.add_argument("--model-dir")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--result", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command == "versions":
        import fuxictr
        import polars
        import ray
        import torch

        write_json(args.result, {"fuxictr": fuxictr.__version__, "torch": torch.__version__, "ray": ray.__version__,
                                 "polars": polars.__version__, "torch_threads": torch.get_num_threads(),
                                 "sgemm_gflops": sgemm_gflops("torch"),
                                 "python": sys.version.split()[0]})
    elif args.command == "prepare":
        start = time.perf_counter()
        paths = prepare(args.raw, args.out)
        write_json(args.result, {"paths": paths, "seconds": time.perf_counter() - start})
    else:
        write_json(args.result, train(args.data, args.model_dir, args.seed, args.epochs, args.warmup_steps))


if __name__ == "__main__":
    main()
