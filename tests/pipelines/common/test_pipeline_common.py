"""The shared pipeline stages (pipelines/common): the shard sink (flat memory) and its accounting, vocabularies per
(field, bucket of values), refused DirectRunner modes, staging for remote runners, and a full prepare through a
registered test FileSystem."""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import tarfile

import pytest

import pipelines.criteo as criteo
from pipelines.common import sink
from pipelines.common.combiners import VocabAccumulator, vocabulary
from pipelines.common.rows import RowAccountingError
from pipelines.common.runner import pipeline_options, source_setup_file
from pipelines.criteo.pipeline import num_shards
from tests.pipelines.common import beam_scheme
from tests.support.pipeline_outputs import differences, snapshot, tfrecords
from tfrec.config import ConfigError, HybridSamplesConfig, PrepareConfig
from tfrec.features import MISSING_TOKEN
from tests.support import ROOT


def kaggle_rows(n: int, seed: int = 0):
    rng = random.Random(seed)
    return ["\t".join([str(rng.randint(0, 1)), *[str(rng.randint(0, 30)) for _ in range(13)],
                       *[f"{rng.randint(0, 12 + j):04x}" if rng.random() > 0.1 else "" for j in range(26)]])
            for _ in range(n)]


def write_input(tmp_path, n=1500, bad=("oops", "")):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(kaggle_rows(n) + list(bad)) + "\n")
    return str(path)


# ----------------------------------------------------------------------------------------------- the sink


def _bundle(fn, batches):
    fn.start_bundle()
    for b in batches:
        list(fn.process(b) or ())
    return [wv.value for wv in fn.finish_bundle()]


def test_parts_of_several_bundles_make_one_readable_file(tmp_path):
    """Bundles write their own parts; a shard of several parts is their GZIP members concatenated, which
    tf.data, Beam's TFRecord source and gzip read as one file; a shard without parts is an empty, valid file."""
    import tensorflow as tf

    temp = str(tmp_path / "tmp")
    fn = sink._WriteParts(temp, sink.TFRECORD)
    fn.setup()
    a = [b"a%d" % i for i in range(50)]
    b = [b"b%d" % i for i in range(70)]
    parts = _bundle(fn, [(("train", 0), a[:20]), (("train", 1), []), (("train", 0), a[20:])])
    parts += _bundle(fn, [(("train", 0), b)])
    assert [(d, p.records) for d, p in parts] == [(("train", 0), 50), (("train", 0), 70)]
    commit = sink._CommitShards(str(tmp_path / "out"), sink.ShardNaming(2), sink.TFRECORD)
    (r0,) = commit.process((("train", 0), [p for _, p in parts] + [None]))
    (r1,) = commit.process((("train", 1), [None]))
    assert r0 == sink.ShardResult(("train", 0), "train-00000-of-00002.tfrecord.gz", 120)
    assert r1.records == 0
    path0 = str(tmp_path / "out" / r0.file_name)
    assert sorted(r.numpy() for r in tf.data.TFRecordDataset(path0, compression_type="GZIP")) == sorted(a + b)
    assert sorted(tfrecords(path0)) == sorted(a + b)
    assert list(tf.data.TFRecordDataset(str(tmp_path / "out" / r1.file_name), compression_type="GZIP")) == []
    assert not os.listdir(temp)  # the concatenated parts are removed


def test_sink_accounting_catches_a_record_lost_before_the_sink(tmp_path, monkeypatch):
    """A record that never reaches the sink (what a lossy runner did) fails the run, with the split named; the
    row counts are the sink's, not the parser's."""
    src = write_input(tmp_path)
    original = sink._WriteParts.process
    dropped = []

    def lossy(self, element):
        destination, records = element
        if records and not dropped and destination[0] == "valid":
            dropped.append(destination)
            element = (destination, records[1:])
        return original(self, element)

    monkeypatch.setattr(sink._WriteParts, "process", lossy)
    out = tmp_path / "out"
    with pytest.raises(RowAccountingError, match=r"row accounting failed: valid: the parser sent [0-9,]+ rows, the "
                                                 r"sink wrote [0-9,]+ "):
        criteo.run(PrepareConfig(inputs=[src], output=str(out), num_shards=2))
    assert dropped and not (out / "stats.json").exists()


def test_sink_accounting_catches_a_lost_dead_letter(tmp_path, monkeypatch):
    src = write_input(tmp_path)
    original = sink._WriteParts.process

    def lossy(self, element):
        destination, records = element
        return original(self, (destination, records[1:] if destination[0] == "deadletter" else records))

    monkeypatch.setattr(sink._WriteParts, "process", lossy)
    with pytest.raises(RowAccountingError, match="dead letter: 2 rejected, 0 written"):
        criteo.run(PrepareConfig(inputs=[src], output=str(tmp_path / "out"), num_shards=1))


def test_hybrid_accounting_catches_a_lost_list(tmp_path, monkeypatch):
    from pipelines.hybrid_samples import run
    from tfrec.config import CascadeConfig
    from tfrec.simulation.cascade import simulate_cascade

    logs = str(tmp_path / "logs")
    simulate_cascade(CascadeConfig(output=logs, requests=40, users=10, items=300, categories=5, retrieved=60,
                                   ranked=30, seed=2))
    original = sink._WriteParts.process

    def lossy(self, element):
        destination, records = element
        if destination[0] == "train" and records:
            element = (destination, records[:-1])
        return original(self, element)

    monkeypatch.setattr(sink._WriteParts, "process", lossy)
    with pytest.raises(RowAccountingError, match="requests_in|train: the parser sent"):
        run(HybridSamplesConfig(inputs=[os.path.join(logs, "requests.jsonl")],
                                items=[os.path.join(logs, "items.jsonl")], output=str(tmp_path / "out"),
                                chunk_boundaries=[5, 10, 20], chunk_rates=[0.5, 0.3, 0.2, 0.1], num_shards=1))


def _prepare_peak_rss_mib(src: str, out: str) -> float:
    """Peak RSS (MiB) of ``tfrec prepare`` run as a user runs it, in a child process of its own."""
    root = ROOT
    code = "import sys; from tfrec.cli import main; sys.exit(main(sys.argv[1:]))"
    with open(out + ".log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, "prepare", "--input", src, "--out", out], cwd=root,
                                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=root))
        _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, open(out + ".log").read()[-2000:]
    return usage.ru_maxrss / 1024.0


def test_peak_memory_does_not_grow_with_rows(tmp_path):
    """The sink groups no record: ten times the rows (the same distinct values, so the vocabularies stay the same
    size) leave the peak RSS of ``tfrec prepare`` where it was. Grouping the records by shard, as a GroupByKey
    sink does, held ~3 KB per row on the DirectRunner: 651 -> 1,207 MiB here."""
    lines = kaggle_rows(2000, seed=5)
    peaks = {}
    for n in (20_000, 200_000):
        src = tmp_path / f"train_{n}.txt"
        with open(src, "w") as f:
            for _ in range(n // len(lines)):
                f.write("\n".join(lines) + "\n")
        peaks[n] = _prepare_peak_rss_mib(str(src), str(tmp_path / f"out_{n}"))
        with open(tmp_path / f"out_{n}" / "stats.json") as f:
            assert sum(json.load(f)["rows_written"].values()) == n
    print(f"peak RSS of tfrec prepare: {peaks} MiB")
    assert peaks[200_000] <= 1.3 * peaks[20_000], peaks


# ----------------------------------------------------------------------------------------------- vocabularies


def test_vocabularies_per_bucket_equal_the_counter_reference(tmp_path):
    """CombinePerKey per (field, bucket of values), the min-count cut, then a sort per field: the same lists as
    counting every value in one Counter (missing values merged with a literal MISSING_TOKEN, ties by token)."""
    import apache_beam as beam

    from pipelines.common.vocab import WriteVocabularies

    rng = random.Random(3)
    fields = ("A", "B", "C")
    rows = [[rng.choice([b"", b"x", b"y", b"zz", MISSING_TOKEN.encode()]), b"%d" % rng.randint(0, 40), b"only"]
            for _ in range(600)]
    bundles = []
    for chunk in (rows[:250], rows[250:]):
        acc = VocabAccumulator(fields)
        acc.pending.extend(chunk)
        bundles.append(list(acc.buckets(4)))
    assert {key for b in bundles for key, _ in b} >= {(1, k) for k in range(4)}  # values spread over buckets
    with beam.Pipeline("DirectRunner") as p:
        _ = (p | beam.Create([part for b in bundles for part in b])
             | WriteVocabularies(str(tmp_path), fields, min_count=20))
    for j, field in enumerate(fields):
        want = vocabulary(collections.Counter(r[j] for r in rows), 20)
        with open(tmp_path / "vocab" / f"{field}.txt", encoding="utf-8") as f:
            assert f.read().splitlines() == [t for t, _ in want]


def test_vocabulary_files_with_no_token_are_written_empty(tmp_path):
    import apache_beam as beam

    from pipelines.common.vocab import WriteVocabularies

    with beam.Pipeline("DirectRunner") as p:
        _ = p | beam.Create([((0, 3), {b"a": 1})]) | WriteVocabularies(str(tmp_path), ("A", "B"), min_count=2)
    assert (tmp_path / "vocab" / "A.txt").read_text() == "" and (tmp_path / "vocab" / "B.txt").read_text() == ""


# ----------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize("args", [["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
                                  ["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
                                  ["--direct_running_mode=multi_processing"], ["--direct_num_workers=0"]])
def test_lossy_direct_runner_modes_are_refused(args):
    with pytest.raises(ConfigError, match="refused: Beam's DirectRunner lost records"):
        pipeline_options("DirectRunner", args)


def test_refused_mode_is_a_usage_error_of_prepare(tmp_path, capsys):
    from tfrec.cli import main

    src = write_input(tmp_path, n=20)
    code = main(["prepare", "--input", src, "--out", str(tmp_path / "out"), "--",
                 "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "multi_processing" in err[0]
    assert not (tmp_path / "out").exists()


def test_remote_runners_get_tfrec_staged():
    setup = source_setup_file()
    assert setup and os.path.exists(setup)
    for runner, args in [("DataflowRunner", ["--project=p", "--region=r", "--temp_location=gs://b/t"]),
                         ("FlinkRunner", ["--flink_master=host:8081"]), ("SparkRunner", []),
                         ("PortableRunner", ["--job_endpoint=host:8099"])]:
        options = pipeline_options(runner, args).get_all_options()
        assert options["setup_file"] == setup, runner
    for runner, args in [("DirectRunner", []), ("PortableRunner", ["--environment_type=LOOPBACK"]),
                         ("FlinkRunner", ["--environment_type=EXTERNAL", "--environment_config=h:5"]),
                         ("DataflowRunner", ["--sdk_container_image=gcr.io/p/tfrec:1"]),
                         ("DataflowRunner", ["--setup_file=/elsewhere/setup.py"])]:
        options = pipeline_options(runner, args).get_all_options()
        assert options["setup_file"] in (None, "/elsewhere/setup.py"), (runner, args)


def test_the_staged_setup_file_builds_a_package_with_the_pipelines(tmp_path):
    """What Dataflow / Flink / Spark workers install: Beam's stager builds an sdist from tfrec's setup.py."""
    from apache_beam.runners.portability.stager import Stager

    tarball = Stager._build_setup_package(source_setup_file(), str(tmp_path))
    if isinstance(tarball, list):  # newer Beam returns the built files
        tarball = tarball[0]
    with tarfile.open(os.path.join(str(tmp_path), os.path.basename(tarball))) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"pipelines/common/sink.py", "pipelines/criteo/parse.py", "tfrec/features.py", "setup.py"} <= names


# ----------------------------------------------------------------------------------------------- file systems


def test_a_full_prepare_through_a_registered_file_system_scheme(tmp_path):
    """Inputs, outputs and temporary parts on ``tfrectest://`` (a FileSystem registered under its own scheme): the
    same dataset as a local run, byte for byte apart from the paths stats.json names."""
    beam_scheme.ROOT["path"] = str(tmp_path / "remote")
    os.makedirs(tmp_path / "remote" / "raw")
    src = write_input(tmp_path / "remote" / "raw")
    write_input(tmp_path)
    local = criteo.run(PrepareConfig(inputs=[str(tmp_path / "train.txt")], output=str(tmp_path / "local"),
                                     num_shards=2, min_count=2))
    remote = criteo.run(PrepareConfig(inputs=["tfrectest://raw/train.txt"], output="tfrectest://out", num_shards=2,
                                      min_count=2))
    assert src.endswith("train.txt") and remote["inputs"] == ["tfrectest://raw/train.txt"]
    assert remote["rows_written"] == local["rows_written"] and remote["rows_rejected"] == 2
    a = snapshot(str(tmp_path / "local"), drop_json_keys=("inputs", "input_formats"))
    b = snapshot(str(tmp_path / "remote" / "out"), drop_json_keys=("inputs", "input_formats"))
    dead = "deadletter/deadletter-00000-of-00001.jsonl"
    for snap, source in ((a, str(tmp_path / "train.txt")), (b, "tfrectest://raw/train.txt")):
        lines = [json.loads(line) for line in snap.pop(dead).elements()]
        assert {d.pop("source") for d in lines} == {source}
        snap[dead] = sorted(json.dumps(d) for d in lines)
    assert not differences(a, b)
    assert not [n for n in os.listdir(tmp_path / "remote" / "out") if "temp" in n]
    with open(tmp_path / "remote" / "out" / "stats.json") as f:
        assert json.load(f)["files"]["train"] == ["train-00000-of-00002.tfrecord.gz", "train-00001-of-00002.tfrecord.gz"]


def test_num_shards_zero_follows_the_input_size(tmp_path, monkeypatch):
    """``num_shards=0``: one shard per SHARD_INPUT_BYTES of input (rounded up), not a fixed cap."""
    src = write_input(tmp_path, n=300)
    size = os.path.getsize(src)
    monkeypatch.setattr("pipelines.criteo.pipeline.SHARD_INPUT_BYTES", (size - 1) // 3)  # 3 "shard sizes" and a bit
    stats = criteo.run(PrepareConfig(inputs=[src], output=str(tmp_path / "out"), num_shards=0))
    assert stats["num_shards"] == 4 and len(stats["files"]["train"]) == 4
    assert num_shards(PrepareConfig(num_shards=0)) == 1  # no plan: the size is unknown
