"""Helpers shared by the tests of several folders (data writers, served models, README command runner, ...).

A helper used by the tests of one folder sits in that folder; the Bazel entry point ``pytest_main.py`` sits here."""

import os

#: The repository root (tests/support/ is two levels below it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
