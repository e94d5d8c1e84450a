"""Where a Trainer call's data and side files are: a prepared dataset directory from ``fn_args``.

tfrec reads a prepared dataset directory: ``<split>-SSSSS-of-NNNNN.tfrecord.gz`` shards beside ``schema.json``,
``stats.json``, ``transform.json``, ``vocab/`` (and ``items.jsonl`` for hybrid samples). A Trainer gets
``fn_args.train_files`` / ``eval_files`` instead, and two layouts reach it:

* tfrec's own runner and ``tfrec prepare`` output: the train files lie in the prepared directory itself, which is
  then the dataset directory (nothing is built);
* TFX's Examples artifact: ``fn_args.train_files`` are file patterns such as ``<examples>/Split-train/*``. The side
  files are either in the artifact's root (tfrec's ExampleGen components write them there) or, when a stock
  ExampleGen (``ImportExampleGen`` over ``tfrec prepare`` output) wrote the artifact, in the prepared directory
  named by ``custom_config["dataset_dir"]`` (:data:`DATASET_DIR_KEY`).

In the second case :func:`dataset_dir` assembles a view: a directory of links, ``train-*`` shards to the files of
``train_files``, ``valid-*`` to those of ``eval_files``, ``test-*`` to the artifact's ``Split-test`` files when it
has them, and every side file. The links point at the data; nothing is copied (on object stores, where there are no
links, the files are copied). The row counts of ``stats.json`` are those of ``tfrec prepare``: give the stock
ExampleGen tfrec's splits as they are (one input split per ``train-*``, ``valid-*``, ``test-*`` pattern).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from typing import Dict, List, Mapping, Optional, Sequence

#: ``custom_config`` key: the prepared dataset directory (``tfrec prepare`` output) whose side files to use.
DATASET_DIR_KEY = "dataset_dir"
#: Files of a prepared directory that are neither shards nor side files.
NOT_SIDE_FILES = ("deadletter",)
_SPLIT_DIR = re.compile(r"^Split-(.+)$")
_GLOB = re.compile(r"[*?\[]")


def expand(patterns: Sequence[str]) -> List[str]:
    """The sorted files matching ``patterns`` (file names or glob patterns, local or ``gs://``)."""
    out = []
    for p in patterns:
        p = str(p)
        if "://" in p:
            import tensorflow as tf

            out += tf.io.gfile.glob(p)
        else:
            out += glob.glob(p) if _GLOB.search(p) else [p]
    return sorted(set(out))


def _is_tfx_layout(train_files: Sequence[str], custom_config: Mapping) -> bool:
    """TFX's Examples layout (``Split-<name>/`` directories, file patterns) or an explicit side-file directory."""
    if custom_config.get(DATASET_DIR_KEY):
        return True
    return any(_GLOB.search(os.path.basename(str(f))) or _SPLIT_DIR.match(os.path.basename(os.path.dirname(str(f))))
               for f in train_files)


def side_dir_of(train_files: Sequence[str], custom_config: Mapping) -> str:
    """The directory holding ``schema.json`` and the other side files: ``custom_config["dataset_dir"]`` when given,
    else the Examples artifact's root (the parent of ``Split-train/``).

    Raises:
      ValueError: neither has a ``schema.json``.
    """
    given = custom_config.get(DATASET_DIR_KEY)
    if given:
        if not os.path.exists(os.path.join(str(given), "schema.json")):
            raise ValueError(f"custom_config[{DATASET_DIR_KEY!r}] = {given!r} has no schema.json (give the output "
                             "directory of `tfrec prepare` / `tfrec prepare-hybrid`)")
        return str(given)
    split_dirs = {os.path.dirname(str(f)) for f in train_files}
    roots = {os.path.dirname(d) for d in split_dirs}
    for root in sorted(roots):
        if os.path.exists(os.path.join(root, "schema.json")):
            return root
    raise ValueError(f"schema.json not found beside the train files ({sorted(split_dirs)}) nor in their Examples "
                     f"artifact ({sorted(roots)}): an Examples artifact that a stock ExampleGen wrote carries no side "
                     f"files; give the prepared dataset directory as custom_config[{DATASET_DIR_KEY!r}]")


def _link(src: str, dst: str) -> None:
    if "://" in src or "://" in dst:
        import tensorflow as tf

        if tf.io.gfile.isdir(src):
            for name in tf.io.gfile.listdir(src):
                _link(os.path.join(src, name.rstrip("/")), os.path.join(dst, name.rstrip("/")))
        else:
            tf.io.gfile.makedirs(os.path.dirname(dst))
            tf.io.gfile.copy(src, dst, overwrite=True)
        return
    os.symlink(os.path.abspath(src), dst)


def build_view(out_dir: str, splits: Mapping[str, Sequence[str]], side_dir: str) -> str:
    """Writes a prepared-dataset view into ``out_dir`` (replaced if it exists): links ``<split>-SSSSS-of-NNNNN
    .tfrecord.gz`` to each split's files (in order) and to every side file of ``side_dir``. Returns ``out_dir``.

    Raises:
      ValueError: a split has no files.
    """
    tmp = out_dir.rstrip("/") + ".tmp"
    for path in (tmp, out_dir):
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
    os.makedirs(tmp)
    for name in sorted(os.listdir(side_dir)):
        if name.endswith(".tfrecord.gz") or _SPLIT_DIR.match(name) or name in NOT_SIDE_FILES or name.startswith("."):
            continue
        _link(os.path.join(side_dir, name), os.path.join(tmp, name))
    for split, files in splits.items():
        if not files:
            raise ValueError(f"no {split} files for the dataset view in {out_dir}")
        for i, f in enumerate(files):
            _link(f, os.path.join(tmp, f"{split}-{i:05d}-of-{len(files):05d}.tfrecord.gz"))
    os.rename(tmp, out_dir)
    return out_dir


def dataset_dir(train_files: Sequence[str], eval_files: Sequence[str], custom_config: Optional[Mapping] = None,
                view_dir: Optional[str] = None) -> str:
    """The prepared dataset directory of a Trainer call (module docstring); builds the view into ``view_dir``
    when the files are in TFX's layout.

    Raises:
      ValueError: no train files, train files in several directories (tfrec's layout), no side files, or TFX's
        layout without a ``view_dir``.
    """
    custom_config = custom_config or {}
    files = [str(f) for f in train_files]
    if not files:
        raise ValueError("fn_args.train_files is empty")
    if not _is_tfx_layout(files, custom_config):
        dirs = {os.path.dirname(f) for f in files}
        if len(dirs) != 1:
            raise ValueError("fn_args.train_files must lie in one dataset directory. Received directories: "
                             f"{sorted(dirs)}")
        return dirs.pop()
    side = side_dir_of(files, custom_config)
    if not view_dir:
        raise ValueError("fn_args.train_files are in TFX's Examples layout; a directory for the dataset view is needed")
    splits: Dict[str, List[str]] = {"train": expand(files), "valid": expand(eval_files)}
    if not splits["train"]:
        raise ValueError(f"fn_args.train_files {files} match no file")
    roots = {os.path.dirname(os.path.dirname(f)) for f in splits["train"]}
    test = expand([os.path.join(r, "Split-test", "*") for r in sorted(roots)])
    if test:
        splits["test"] = test
    return build_view(view_dir, splits, side)
