"""What the test layers share: the corpora, the command as a user runs it, object stores,
fault-injecting servers, Flink and Spark clusters, test images, the fake engine and comparisons
of job rows.
Plain functions and classes, imported normally (``pytest.ini`` puts ``tests/`` on the path);
the fixtures built on them are in the ``conftest.py`` files."""
