"""A Beam ``FileSystem`` under its own scheme, ``tfrectest://``, backed by a local directory: what a remote file
system (gs://, s3://, hdfs://) looks like to the pipelines, for tests. Importing this module registers it (Beam
finds ``FileSystem`` subclasses by their scheme); set :data:`ROOT` before use."""

from __future__ import annotations

import os
import posixpath

from apache_beam.io.filesystem import FileMetadata, FileSystem
from apache_beam.io.localfilesystem import LocalFileSystem

SCHEME = "tfrectest"
PREFIX = SCHEME + "://"
#: The local directory that ``tfrectest://`` paths live under.
ROOT = {"path": ""}


def local_path(url: str) -> str:
    if not url.startswith(PREFIX):
        raise ValueError(f"not a {PREFIX} path: {url}")
    return os.path.join(ROOT["path"], url[len(PREFIX):])


def url_of(path: str) -> str:
    return PREFIX + os.path.relpath(path, ROOT["path"]).replace(os.sep, "/")


class PrefixFileSystem(FileSystem):
    """``tfrectest://a/b`` is ``ROOT/a/b``; every operation is the local file system's."""

    @classmethod
    def scheme(cls):
        return SCHEME

    def __init__(self, pipeline_options):
        super().__init__(pipeline_options)
        self._local = LocalFileSystem(pipeline_options)

    def join(self, basepath, *paths):
        return posixpath.join(basepath, *paths)

    def split(self, path):
        return posixpath.split(path)

    def mkdirs(self, path):
        self._local.mkdirs(local_path(path))

    def has_dirs(self):
        return True

    def _list(self, dir_or_prefix):
        for m in self._local._list(local_path(dir_or_prefix)):
            yield FileMetadata(url_of(m.path), m.size_in_bytes, m.last_updated_in_seconds)

    def create(self, path, mime_type="application/octet-stream", compression_type="auto"):
        return self._local.create(local_path(path), mime_type, compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type="auto"):
        return self._local.open(local_path(path), mime_type, compression_type)

    def copy(self, source_file_names, destination_file_names):
        self._local.copy([local_path(p) for p in source_file_names], [local_path(p) for p in destination_file_names])

    def rename(self, source_file_names, destination_file_names):
        self._local.rename([local_path(p) for p in source_file_names],
                           [local_path(p) for p in destination_file_names])

    def exists(self, path):
        return self._local.exists(local_path(path))

    def size(self, path):
        return self._local.size(local_path(path))

    def last_updated(self, path):
        return self._local.last_updated(local_path(path))

    def checksum(self, path):
        return self._local.checksum(local_path(path))

    def metadata(self, path):
        m = self._local.metadata(local_path(path))
        return FileMetadata(path, m.size_in_bytes, m.last_updated_in_seconds)

    def delete(self, paths):
        self._local.delete([local_path(p) for p in paths])
