"""Beam steps of nsfw-scan, thin: what they read and write is ``storage/``'s. The steps that
open files take Beam's ``FileSystems`` from ``storage/filesystems.py``, which registers
``http://`` and ``https://`` with it in every process that runs one of them."""
