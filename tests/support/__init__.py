"""What the test layers share: the corpora, the command as a user runs it, the job run in this
process, object stores, fault-injecting servers, Flink and Spark clusters, test images and the
fake scorer. Plain functions and classes, imported normally (``pytest.ini`` puts ``tests/`` on
the path); the fixtures built on them are in the ``conftest.py`` files."""
