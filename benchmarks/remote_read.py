"""Images/s from an S3 server with 0, 20 and 100 ms added per request, against the same images
read from local disk, in one run.

moto's S3 server runs in its own process on 127.0.0.1, with a proxy (``tests/faults.py``, its
own process) in front that waits the given latency before forwarding each request. Two
measures per source:

- load: ``LoadImage`` alone (read + decode, what ``reading.threads`` changes), in a
  local-runner pipeline in this process;
- job: ``nsfw-scan run`` (read, decode, model, Parquet) in a child process, images/s after the
  model load (from its ``_SUMMARY.json``).

The last rows repeat 100 ms with ``reading.threads: 0`` (each image read in its decoding
thread, one per core: how reads worked before the reading pool).

    python benchmarks/remote_read.py [--images 240] [--size 1024x768]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from measure import run_cli
from nsfw_scan.pipeline.runners import local_runner
from nsfw_scan.transforms.load import ERRORS, LoadImage
from nsfw_scan.transforms.manifests import Entry

TESTS = Path(__file__).resolve().parents[1] / "tests"
KEYS = ["--s3_access_key_id=testing", "--s3_secret_access_key=testing", "--s3_region_name=us-east-1"]


def photos(n: int, width: int, height: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for _ in range(n):
        base = np.stack([x * rng.uniform(0.1, 0.3), y * rng.uniform(0.1, 0.4), (x + y) * rng.uniform(0.05, 0.15)], -1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


def child(code: str, *args: str) -> tuple[subprocess.Popen, int]:
    """A server in its own process; it prints its port."""
    process = subprocess.Popen([sys.executable, *(["-c", code] if code else []), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    return process, int(process.stdout.readline())


MOTO = ("from moto.server import ThreadedMotoServer; import threading\n"
        "s = ThreadedMotoServer('127.0.0.1', 0, verbose=False); s.start()\n"
        "print(s.get_host_and_port()[1], flush=True); threading.Event().wait()")


def load_rate(uris: list[str], beam_args: list[str], read_threads: int) -> float:
    options = PipelineOptions(beam_args)
    load = LoadImage("yahoo", 64 << 20, 178_956_970, "bench", decode_threads=None, ahead=64, read_threads=read_threads)
    started = time.monotonic()
    with beam.Pipeline(runner=local_runner(options), options=options) as p:
        loaded = (p | beam.Create([Entry(u, {}, "bench", i + 1) for i, u in enumerate(uris)]) | beam.ParDo(load).with_outputs(ERRORS, main="images"))
        loaded[ERRORS] | "NoErrors" >> beam.Map(lambda row: sys.exit(f"read failed: {row}"))
    return len(uris) / (time.monotonic() - started)


def job_rate(manifest: Path, work: Path, name: str, beam_args: list[str], read_threads: int) -> float:
    config = work / f"{name}.yaml"
    config.write_text(f"reading:\n  threads: {read_threads}\n")
    output = work / f"out-{name}"
    run_cli("run", "--manifest", manifest, "--output", output, "--config", config, *beam_args)
    summary = json.loads((output / "_SUMMARY.json").read_text())
    assert summary["scored"] == len(manifest.read_text().split()), summary
    return summary["images_per_s_after_load"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--latencies", default="0,20,100")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="nsfw-scan-remote-read-"))
    images = photos(args.images, width, height)

    import boto3

    moto, moto_port = child(MOTO)
    servers = [moto]
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        local, remote = [], []
        for i, data in enumerate(images):
            (work / f"{i:05d}.jpg").write_bytes(data)
            local.append(str(work / f"{i:05d}.jpg"))
            client.put_object(Bucket="bench", Key=f"{i:05d}.jpg", Body=data)
            remote.append(f"s3://bench/{i:05d}.jpg")
        (work / "local.txt").write_text("\n".join(local) + "\n")
        (work / "s3.txt").write_text("\n".join(remote) + "\n")
        mean_kb = sum(map(len, images)) / len(images) / 1024
        print(f"{len(images)} JPEGs of {width}x{height}, {mean_kb:.0f} KB on average\n")

        sources = [("local disk", None, local, [], 32), ("S3, no proxy", None, remote,
                   [f"--s3_endpoint_url=http://127.0.0.1:{moto_port}", *KEYS], 32)]
        for ms in map(int, args.latencies.split(",")):
            proxy, port = child("", str(TESTS / "faults.py"), str(moto_port), str(ms))
            servers.append(proxy)
            sources.append((f"S3 + {ms} ms", ms, remote, [f"--s3_endpoint_url=http://127.0.0.1:{port}", *KEYS], 32))
        slowest = sources[-1]
        sources.append((f"{slowest[0]}, reading.threads 0", *slowest[1:4], 0))

        print("| source | reading threads | load (read + decode) img/s | vs local | job img/s after model load | vs local |")
        print("|---|---|---|---|---|---|", flush=True)
        base = None
        for name, _, uris, beam_args, threads in sources:
            load = load_rate(uris, beam_args, threads)
            manifest = work / ("local.txt" if uris is local else "s3.txt")
            job = job_rate(manifest, work, f"run{len(name)}{threads}{abs(hash(name))}", beam_args, threads)
            base = base or (load, job)
            threads_text = threads if threads else "0 (one per core, shared with decoding)"
            print(f"| {name} | {threads_text} | {load:.1f} | {load / base[0]:.2f} | {job:.1f} | {job / base[1]:.2f} |", flush=True)
    finally:
        for server in servers:
            server.terminate()


if __name__ == "__main__":
    main()
