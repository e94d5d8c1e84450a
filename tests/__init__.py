"""tfrec's tests. The folders mirror the packages they test (``tests/tfrec/losses/`` tests ``tfrec/losses/``,
``tests/pipelines/criteo/`` tests ``pipelines/criteo/``, ...); the files directly here test the project as a whole.
Every folder is a package, so pytest imports ``tests.<path>`` from the repository root and never puts ``tests/``
itself on ``sys.path`` (where ``tests/pipelines/`` would hide the ``pipelines`` package)."""
