#!/usr/bin/env bash
# Engine pieces for running the job on real Flink and Spark clusters: the engine tests, the
# engines benchmark, or a cluster of one's own. Puts into .engines/ (ignored by git):
#   venv/                  a Python environment of its own: nsfw-scan (editable, from this
#                          checkout) with apache-beam of engines/constraints.txt, the release the
#                          job servers and the boot program below are built for; the tests and
#                          the benchmark submit jobs with its nsfw-scan, and the engines' Python
#                          workers run its Python
#   flink/pyflink/         a Flink distribution (bin/jobmanager.sh, bin/taskmanager.sh, lib/), from PyPI
#   spark/pyspark/         a Spark distribution (bin/spark-class, jars/), from PyPI
#   beam-flink-job-server.jar, beam-spark-job-server.jar
#                          Beam's job servers: launcher jars over the runners' Maven artifacts
#                          and their dependencies (flink-job-server/, spark-job-server/)
#   bin/boot               Beam's Python SDK worker boot program, built from its Go module
#   engines.json           the versions and paths above, read by the tests and benchmarks
# Only PyPI, Maven Central and the Go module proxy are used. A second run with the same
# versions does nothing.
#
# Usage: engines/install.sh [PYTHON]
#   PYTHON: a Python 3.11 or 3.12 to make .engines/venv with (Beam 2.62.0 has no wheels for
#   3.13, nsfw-scan needs 3.11); by default the first of python3.12, python3.11 and python3 on
#   the PATH that is one of those.
set -euo pipefail
cd "$(dirname "$0")/.."

# Beam 2.62.0 is the newest release whose Flink and Spark job servers Maven Central serves with
# all their dependencies; Flink 1.19 and Spark 3 are the newest engines its runners are published
# for (beam-runners-flink-1.19, beam-runners-spark-3), at those lines' latest patch releases.
BEAM_VERSION=$(sed -n 's/^apache-beam==//p' engines/constraints.txt)
FLINK_VERSION=1.19.3
FLINK_MINOR=${FLINK_VERSION%.*}
FLINK_WHEEL_PYTHON=3.11  # the newest Python apache-flink 1.19 has wheels for; its Python code is never run
SPARK_VERSION=3.5.7
DEST=$(pwd)/.engines

supported() {  # prints "3.x" when $1 runs and is a Python 3.11 or 3.12
    "$1" -c 'import sys; v = sys.version_info[:2]; assert (3, 11) <= v <= (3, 12); print("%d.%d" % v)' 2>/dev/null
}
if [ $# -ge 1 ]; then
    PYTHON=$1
    PYTHON_VERSION=$(supported "$PYTHON") || {
        echo "engines/install.sh: $PYTHON is not a Python 3.11 or 3.12 (Beam $BEAM_VERSION, whose job" \
             "servers the engine tests run, has no wheels for 3.13; nsfw-scan needs 3.11); name one that is" >&2
        exit 2
    }
else
    PYTHON=
    for candidate in python3.12 python3.11 python3; do
        if PYTHON_VERSION=$(supported "$candidate"); then PYTHON=$(command -v "$candidate"); break; fi
    done
    if [ -z "$PYTHON" ]; then
        echo "engines/install.sh: no Python 3.11 or 3.12 on the PATH (Beam $BEAM_VERSION, whose job" \
             "servers the engine tests run, has no wheels for 3.13; nsfw-scan needs 3.11); install one, or name it:" \
             "engines/install.sh /path/to/python3.12" >&2
        exit 2
    fi
fi
if ! grep -q "github.com/apache/beam/sdks/v2 v$BEAM_VERSION " engines/boot/go.mod; then
    echo "engines/install.sh: engines/constraints.txt names apache-beam $BEAM_VERSION, but engines/boot/go.mod" \
         "builds another release's boot program" >&2
    exit 2
fi
for tool in java mvn go; do
    command -v "$tool" >/dev/null || { echo "engines/install.sh: $tool is needed (a JDK 17, Maven, Go)" >&2; exit 2; }
done

# what the environment is made from: a change to any of these makes it again
INPUTS=$(cat setup.py engines/constraints.txt engines/*.pom.xml engines/boot/go.sum | "$PYTHON" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])')
STAMP="$DEST/installed-python-$PYTHON_VERSION-beam-$BEAM_VERSION-flink-$FLINK_VERSION-spark-$SPARK_VERSION-$INPUTS"
if [ -e "$STAMP" ]; then
    echo "engine pieces for Python $PYTHON_VERSION, Beam $BEAM_VERSION, Flink $FLINK_VERSION, Spark $SPARK_VERSION are in .engines/"
    exit 0
fi

rm -rf "$DEST"
mkdir -p "$DEST/bin"
echo "Python $PYTHON_VERSION environment with nsfw-scan and apache-beam $BEAM_VERSION (PyPI): .engines/venv"
"$PYTHON" -m venv "$DEST/venv"
"$DEST/venv/bin/python" -m pip install --quiet --upgrade pip
"$DEST/venv/bin/python" -m pip install --quiet -c engines/constraints.txt -e '.[aws]'

echo "Flink $FLINK_VERSION and Spark $SPARK_VERSION distributions (PyPI)"
# Only their bin/, lib/ and jars/ are used, never their Python code. apache-flink's wheel (for
# Python $FLINK_WHEEL_PYTHON, whatever this one is: its source package's build needs an old
# apache-beam) is unpacked over apache-flink-libraries (a source package of jars only).
PIP=("$DEST/venv/bin/python" -m pip install --quiet --no-deps --no-compile)
"${PIP[@]}" --target "$DEST/flink" "apache-flink-libraries==$FLINK_VERSION"
"$DEST/venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$FLINK_WHEEL_PYTHON" --platform manylinux2014_x86_64 \
    --dest "$DEST/downloads" "apache-flink==$FLINK_VERSION"
"$DEST/venv/bin/python" -m zipfile -e "$DEST"/downloads/apache_flink-*.whl "$DEST/flink"
chmod +x "$DEST"/flink/pyflink/bin/*
rm -rf "$DEST/downloads"
"${PIP[@]}" --target "$DEST/spark" "pyspark==$SPARK_VERSION"

echo "Beam $BEAM_VERSION job servers (Maven Central)"
for engine in flink spark; do
    mvn --batch-mode --quiet -Dstyle.color=never -f "engines/$engine-job-server.pom.xml" \
        -Dbeam.version="$BEAM_VERSION" -Dflink.minor="$FLINK_MINOR" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DoutputDirectory="$DEST/$engine-job-server"
done
"$DEST/venv/bin/python" engines/launcher_jar.py "$DEST/beam-flink-job-server.jar" \
    org.apache.beam.runners.flink.FlinkJobServerDriver "$DEST/flink-job-server"
"$DEST/venv/bin/python" engines/launcher_jar.py "$DEST/beam-spark-job-server.jar" \
    org.apache.beam.runners.spark.SparkJobServerDriver "$DEST/spark-job-server" "$DEST/spark/pyspark/jars"

echo "Beam $BEAM_VERSION Python SDK worker boot program (Go module proxy)"
(cd engines/boot && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -o "$DEST/bin/boot" github.com/apache/beam/sdks/v2/python/container)

cat > "$DEST/engines.json" <<EOF
{"beam": "$BEAM_VERSION", "flink": "$FLINK_VERSION", "spark": "$SPARK_VERSION", "python_version": "$PYTHON_VERSION",
 "python": "venv/bin/python",
 "flink_home": "flink/pyflink", "spark_home": "spark/pyspark",
 "flink_job_server_jar": "beam-flink-job-server.jar", "spark_job_server_jar": "beam-spark-job-server.jar",
 "boot": "bin/boot"}
EOF
touch "$STAMP"
echo "engine pieces installed in .engines/ ($(du -sh "$DEST" | cut -f1)); the engine tests use .engines/venv"
