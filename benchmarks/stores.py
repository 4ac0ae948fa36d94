"""A one-image ``nsfw-scan run`` against each store: wall time, and how much of it is start-up.

Starts moto's S3 server and gcp-storage-emulator on 127.0.0.1 (free ports; both come with
``pip install -e '.[test]'``), puts one generated image and a manifest in a bucket on each,
and runs the job ``--repeat`` times per store (and once per repeat on a local folder),
each into a new output folder. Prints per store the median wall time of the command, the
pipeline's own time and its model load (from the job's summary), and start-up: wall time
less the pipeline's time after its model load.

    python benchmarks/stores.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from measure import run_cli  # noqa: E402

from support.stores import BIN, free_port, gcs_store, image_bytes, s3_store, serve, stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsfw-scan-stores-"))
    s3_port, gcs_port = free_port(), free_port()
    servers = [
        serve([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], f"http://127.0.0.1:{s3_port}/",
              work / "moto.log"),
        serve([str(BIN / "gcp-storage-emulator"), "start", "-H", "127.0.0.1", "--port", str(gcs_port), "-M", "-q"],
              f"http://127.0.0.1:{gcs_port}/storage/v1/b", work / "gcs.log"),
    ]
    try:
        (work / "local").mkdir()
        (work / "local" / "one.png").write_bytes(image_bytes(1, size=(640, 480)))
        (work / "local" / "one.txt").write_text("one.png\n")
        targets = {"local": (str(work / "local" / "one.txt"), lambda i: str(work / "local" / f"out{i}"), [])}
        for store in (s3_store(f"http://127.0.0.1:{s3_port}"), gcs_store(f"http://127.0.0.1:{gcs_port}")):
            store.put("img/one.png", image_bytes(1, size=(640, 480)))
            manifest = store.put("one.txt", store.uri("img/one.png").encode())
            targets[store.scheme] = (manifest, lambda i, s=store: s.uri(f"out{i}"), store.flags)

        print("| store | wall s | pipeline s | model load s | start-up s | start-up share |")
        print("|---|---|---|---|---|---|")
        for name, (manifest, output, flags) in targets.items():
            walls, pipelines, loads = [], [], []
            for i in range(args.repeat):
                _, wall, _ = run_cli("run", "--manifest", manifest, "--output", output(i), *flags)
                summary = json.loads(run_cli_summary(output(i), flags))
                walls.append(wall)
                pipelines.append(summary["seconds"])
                loads.append(summary["model_load_seconds"])
            wall, pipeline, load = (statistics.median(v) for v in (walls, pipelines, loads))
            startup = wall - (pipeline - load)
            print(f"| {name} | {wall:.1f} | {pipeline:.1f} | {load:.1f} | {startup:.1f} | {startup / wall:.0%} |")
    finally:
        for server in servers:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)


def run_cli_summary(output: str, flags: list[str]) -> str:
    from nsfw_scan.storage.filesystems import FileSystems
    from nsfw_scan.storage.options import StorageOptions

    StorageOptions.from_beam_args(flags).apply()
    with FileSystems.open(FileSystems.join(output, "_SUMMARY.json")) as f:
        return f.read().decode()


if __name__ == "__main__":
    main()
