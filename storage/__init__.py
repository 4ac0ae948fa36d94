"""Where files live and how they are reached, owned once; no Beam pipeline wiring (the Beam
steps in ``transforms/`` and the launcher in ``pipeline/`` call it).

- ``options``: Beam's filesystem options (``StorageOptions``), from flags to every worker
- ``clients``: one client factory per object store (S3, GCS)
- ``read``: one image's bytes from any store, with retries; ``http_reading`` (http(s) with its
  address guard) and ``s3read`` (one GET per object) under it
- ``filesystems``: Beam's ``FileSystems``, with http(s) registered (``http_reading`` under it)
- ``layout``, ``schema``, ``parquet_files``, ``results_folder``, ``rows``: the output folder's
  names, its result files' columns, a Parquet file read and written whole, the folder's runs and
  result files as the commands read and rewrite them (``ResultsFolder``), the rows a run makes
  durable while it goes; ``paths``: local paths made absolute and shown short
- ``lock`` (the output folder's one-writer protocol) and ``lock_stores`` (the lock object in each
  store)
- ``worker``: what a worker process makes once and shares (one value per key)
- ``compat``: every use of a private name of Beam or the standard library
"""
