#!/usr/bin/env bash
# Engine pieces for running the job on real Flink and Spark clusters: the engine tests, the
# engines benchmark, or a cluster of one's own. Puts into .engines/ (ignored by git):
#   flink/pyflink/         a Flink distribution (bin/jobmanager.sh, bin/taskmanager.sh, lib/), from PyPI
#   spark/pyspark/         a Spark distribution (bin/spark-class, jars/), from PyPI
#   beam-flink-job-server.jar, beam-spark-job-server.jar
#                          Beam's job servers: launcher jars over the runners' Maven artifacts
#                          and their dependencies (flink-job-server/, spark-job-server/)
#   bin/boot               Beam's Python SDK worker boot program, built from its Go module
#   engines.json           the versions and paths above, read by the tests and benchmarks
# Only PyPI, Maven Central and the Go module proxy are used. A second run with the same
# versions does nothing. Usage: engines/install.sh [PYTHON]  (default .venv/bin/python: the
# environment nsfw-scan is installed in; its apache-beam release picks the job servers').
set -euo pipefail
cd "$(dirname "$0")/.."

# Flink 1.19 and Spark 3 are the newest engines Beam 2.62's runners are published for on Maven
# Central (beam-runners-flink-1.19, beam-runners-spark-3); these are their latest patch releases.
FLINK_VERSION=1.19.3
FLINK_MINOR=${FLINK_VERSION%.*}
SPARK_VERSION=3.5.7

PYTHON=${1:-.venv/bin/python}
DEST=$(pwd)/.engines
BEAM_VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("apache-beam"))')
if ! grep -q "github.com/apache/beam/sdks/v2 v$BEAM_VERSION " engines/boot/go.mod; then
    echo "engines/install.sh: apache-beam $BEAM_VERSION is installed, but engines/boot/go.mod builds another" \
         "release's boot program; install nsfw-scan's pinned apache-beam (pip install -e .)" >&2
    exit 2
fi
STAMP="$DEST/installed-beam-$BEAM_VERSION-flink-$FLINK_VERSION-spark-$SPARK_VERSION"
if [ -e "$STAMP" ]; then
    echo "engine pieces for Beam $BEAM_VERSION, Flink $FLINK_VERSION, Spark $SPARK_VERSION are in .engines/"
    exit 0
fi
for tool in java mvn go; do
    command -v "$tool" >/dev/null || { echo "engines/install.sh: $tool is needed (a JDK 17, Maven, Go)" >&2; exit 2; }
done

rm -rf "$DEST"
mkdir -p "$DEST/bin"
echo "Flink $FLINK_VERSION and Spark $SPARK_VERSION distributions (PyPI)"
# the Flink packages pin an old apache-beam: no dependencies, a folder of their own
"$PYTHON" -m pip install --quiet --no-deps --no-compile --target "$DEST/flink" \
    "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION"
"$PYTHON" -m pip install --quiet --no-deps --no-compile --target "$DEST/spark" "pyspark==$SPARK_VERSION"

echo "Beam $BEAM_VERSION job servers (Maven Central)"
for engine in flink spark; do
    mvn --batch-mode --quiet -Dstyle.color=never -f "engines/$engine-job-server.pom.xml" \
        -Dbeam.version="$BEAM_VERSION" -Dflink.minor="$FLINK_MINOR" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DoutputDirectory="$DEST/$engine-job-server"
done
"$PYTHON" engines/launcher_jar.py "$DEST/beam-flink-job-server.jar" \
    org.apache.beam.runners.flink.FlinkJobServerDriver "$DEST/flink-job-server"
"$PYTHON" engines/launcher_jar.py "$DEST/beam-spark-job-server.jar" \
    org.apache.beam.runners.spark.SparkJobServerDriver "$DEST/spark-job-server" "$DEST/spark/pyspark/jars"

echo "Beam $BEAM_VERSION Python SDK worker boot program (Go module proxy)"
(cd engines/boot && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -o "$DEST/bin/boot" github.com/apache/beam/sdks/v2/python/container)

cat > "$DEST/engines.json" <<EOF
{"beam": "$BEAM_VERSION", "flink": "$FLINK_VERSION", "spark": "$SPARK_VERSION",
 "flink_home": "flink/pyflink", "spark_home": "spark/pyspark",
 "flink_job_server_jar": "beam-flink-job-server.jar", "spark_job_server_jar": "beam-spark-job-server.jar",
 "boot": "bin/boot"}
EOF
touch "$STAMP"
echo "engine pieces installed in .engines/ ($(du -sh "$DEST" | cut -f1))"
