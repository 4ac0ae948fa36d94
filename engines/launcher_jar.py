"""Write a launcher jar: a jar holding only a manifest, whose ``Main-Class`` is a Beam job server
and whose ``Class-Path`` lists the jars of the given folders (relative to the launcher, so the
folder can move). ``java -jar launcher.jar`` then runs the job server as its shaded jar would,
and Beam's Python runners take it as ``--flink_job_server_jar`` / ``--spark_job_server_jar``.

Where several folders hold the same artifact (Spark's own jars beside the runner's), the higher
version is listed, as Gradle resolves the shaded jar Beam publishes. Java 17 needs some JDK
packages opened to Flink's and Spark's reflection: ``Add-Opens`` in the manifest does that for
``java -jar``.

    python launcher_jar.py OUT.jar MAIN_CLASS FOLDER [FOLDER ...]
"""

from __future__ import annotations

import os
import re
import sys
import zipfile

OPENS = ("java.base/java.io java.base/java.lang java.base/java.lang.invoke java.base/java.lang.reflect "
         "java.base/java.net java.base/java.nio java.base/java.text java.base/java.time java.base/java.util "
         "java.base/java.util.concurrent java.base/java.util.concurrent.atomic java.base/sun.nio.ch "
         "java.base/sun.nio.cs java.base/sun.security.action java.base/sun.util.calendar")
EXPORTS = "java.base/sun.net.util java.base/sun.nio.ch"

_VERSIONED = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[^/]*)\.jar$")


def _version_key(version: str) -> tuple:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-_]", version))


def class_path(folders: list[str], base: str) -> list[str]:
    chosen: dict[str, tuple[tuple, str]] = {}
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".jar"):
                continue
            match = _VERSIONED.match(name)
            artifact, key = (match["artifact"], _version_key(match["version"])) if match else (name, ())
            if artifact not in chosen or key > chosen[artifact][0]:
                chosen[artifact] = (key, os.path.relpath(os.path.join(folder, name), base))
    return sorted(path for _, path in chosen.values())


def _manifest_line(name: str, value: str) -> bytes:
    """A manifest header, folded at 72 bytes as the jar format requires."""
    raw = f"{name}: {value}".encode()
    lines = [raw[:72]] + [b" " + raw[i:i + 71] for i in range(72, len(raw), 71)]
    return b"\r\n".join(lines) + b"\r\n"


def write_launcher(jar: str, main_class: str, folders: list[str]) -> int:
    paths = class_path(folders, os.path.dirname(os.path.abspath(jar)))
    manifest = b"".join(_manifest_line(k, v) for k, v in [
        ("Manifest-Version", "1.0"), ("Main-Class", main_class), ("Class-Path", " ".join(paths)),
        ("Add-Opens", OPENS), ("Add-Exports", EXPORTS)]) + b"\r\n"
    with zipfile.ZipFile(jar, "w") as out:
        out.writestr("META-INF/MANIFEST.MF", manifest)
    return len(paths)


if __name__ == "__main__":
    out, main, *dirs = sys.argv[1:]
    print(f"{out}: {main}, {write_launcher(out, main, dirs)} jars")
