"""The list-wise reader: batch then parse, train and eval list sizes, padding, labels dict, schema dispatch."""

import json
import os

import numpy as np
import tensorflow as tf

from tfrec.features import HCCP
from tfrec.listwise_data import label_keys, make_listwise_dataset
import pytest

from tfrec.data import DatasetError
from tfrec.families import family_of
from tfrec.train_preranking import load_listwise_schema


def _feature(v):
    if isinstance(v[0], bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
    if isinstance(v[0], float):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=v))


def _write(path, lengths):
    from tensorflow_serving.apis import input_pb2

    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for r, n in enumerate(lengths):
            elwc = input_pb2.ExampleListWithContext()
            ctx = {"request_id": [f"r{r}".encode()], "user_id": [b"u"], "user_segment": [b"s"], "scenario": [b"a"],
                   "click_history": [b"i1", b"i2"][:r % 3]}
            elwc.context.CopyFrom(tf.train.Example(features=tf.train.Features(
                feature={k: _feature(v) for k, v in ctx.items() if v})))
            for k in range(n):
                item = {"item_id": [f"i{k}".encode()], "category": [b"c"], "price": [1.0], "sample_type": [1],
                        "rc_position": [k], "click": [float(k == 0)], "purchase": [0.0], "diversity": [1.0],
                        "exposure": [1.0]}
                elwc.examples.add().CopyFrom(tf.train.Example(features=tf.train.Features(
                    feature={f: _feature(v) for f, v in item.items()})))
            w.write(elwc.SerializeToString())


def test_reader_pads_to_each_list_size(tmp_path):
    path = str(tmp_path / "train-00000-of-00001.tfrecord.gz")
    _write(path, [3, 5, 2, 4])
    for list_size in (4, 8):
        # whole_lists=False: truncation allowed (an evaluation reader fails on the 5-item list at size 4 instead,
        # tests/tfrec/test_eval_list_size.py)
        ds = make_listwise_dataset([path], HCCP, 4, list_size, training=False, whole_lists=False)
        x, y = next(iter(ds))
        assert set(y) == set(label_keys(HCCP))
        assert x["item_id"].shape == (4, list_size) and y["click"].shape == (4, list_size)
        mask = y["example_mask"].numpy()
        assert mask.sum(axis=1).tolist() == [min(n, list_size) for n in (3, 5, 2, 4)]
        assert np.all(y["click"].numpy()[~mask] == -1.0)  # padded labels
        assert np.all(y["rc_position"].numpy()[~mask] == -1)
        assert x["click_history"].dtype == tf.string and x["click_history"].shape[0] == 4  # densified


def test_schema_dispatch(tmp_path):
    with open(tmp_path / "schema.json", "w") as f:
        json.dump(HCCP.to_json(), f)
    assert family_of(str(tmp_path)).name == "preranking" and load_listwise_schema(str(tmp_path)) == HCCP
    os.makedirs(tmp_path / "point")
    with open(tmp_path / "point" / "schema.json", "w") as f:
        json.dump({"name": "criteo", "dense": [], "categorical": []}, f)
    assert family_of(str(tmp_path / "point")).name == "pointwise"
    with pytest.raises(DatasetError, match="is a pointwise dataset .*not a preranking one"):
        load_listwise_schema(str(tmp_path / "point"))
