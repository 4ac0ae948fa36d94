"""Real Flink and Spark clusters on 127.0.0.1 for the engine tests, from the pieces
``engines/install.sh`` puts into ``.engines/``: a Flink JobManager, two TaskManagers (separate
JVMs, one slot each) and Beam's Flink job server; a Spark Master, a Worker and Beam's Spark job
server. Each cluster is started once per test session on free ports, its logs kept in the
session's temporary folder (a failing test shows where, and their ends), and every process is
stopped by its process group at the end.

The job reaches a cluster as a user's would: ``--runner FlinkRunner`` / ``SparkRunner`` with the
packaged preset, the job server's address (or its jar, which Beam then starts itself), and
``--environment_type PROCESS``: each Python SDK worker is started by the task manager or executor
through Beam's boot program, in the Python environment on the engine's PATH. That environment is
the engines' own (``.engines/venv``, nsfw-scan with the Beam release of the job servers and the
boot program), which also submits the job (``Cluster.nsfw_scan``), as ``pip install nsfw-scan``
of that release on each machine would give."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .cli import nsfw_scan
from .stores import NO_METADATA, free_port, stop

ENGINES = Path(__file__).resolve().parents[2] / ".engines"
INSTALL = "engines/install.sh"


def engine_pieces() -> dict:
    """The installed pieces (absolute paths), or a skip naming what is missing; where CI runs
    the suite, a missing piece fails the test instead."""
    reason = None
    if not shutil.which("java"):
        reason = "no java on the PATH (the Flink and Spark tests need a JDK 17)"
    elif not (ENGINES / "engines.json").exists():
        reason = f"no engine pieces in .engines/ (run {INSTALL})"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"engine tests cannot run in CI: {reason}")
        pytest.skip(reason)
    pieces = json.loads((ENGINES / "engines.json").read_text())
    versions = ("beam", "flink", "spark", "python_version")
    return {k: (str(ENGINES / v) if k not in versions else v) for k, v in pieces.items()}


def wait_until(ready, what: str, procs: list, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: a process exited ({proc.args[0]}, status {proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.5)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclasses.dataclass
class Cluster:
    """A running engine: the flags that send ``nsfw-scan run`` to it, its processes and logs."""

    engine: str
    python: str  # the engines' environment's Python: submits the job, runs the SDK workers
    flags: list[str]  # job server address, boot program, parallelism (with --config flink|spark or a copy)
    jar_flags: list[str]  # the same, with the job server's jar for Beam to start instead of its address
    logs: Path
    procs: dict[str, subprocess.Popen]
    worker_logs_glob: tuple[str, ...]
    rest: str = ""  # Flink's REST API, Spark Master's web UI (http://127.0.0.1:PORT)
    start_worker: object = None  # (name) -> starts one more TaskManager (Flink), as a cluster manager would

    def rest_json(self, path: str):
        """The engine's answer at ``path``: Flink's REST API (e.g. ``/jobs/overview``), Spark
        Master's state (``/json``)."""
        return json.loads(urllib.request.urlopen(self.rest + path, timeout=10).read())

    def kill(self, name: str) -> None:
        """SIGKILL a cluster process and everything in its process group (a TaskManager's Python
        workers too): a lost machine."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def executor_pids(self) -> list[int]:
        """The JVMs of this Spark cluster's executors (their working folders are under its logs)."""
        return [pid for pid, command in _processes()
                if b"CoarseGrainedExecutorBackend" in command and _cwd(pid).startswith(str(self.logs))]

    def sdk_worker_pids(self, name: str) -> list[int]:
        """The Python SDK workers that the cluster process ``name`` (a TaskManager, Spark's
        Worker for its executors) started: Beam's boot program's children, in its session."""
        session = self.procs[name].pid
        return [pid for pid, command in _processes() if b"sdk_worker_main" in command and _session(pid) == session]

    def nsfw_scan(self, *args, timeout=900):
        """``nsfw-scan ARGS`` from the engines' environment, as a user of its Beam release runs it."""
        return nsfw_scan(*args, timeout=timeout, python=self.python)

    def worker_logs(self) -> dict[Path, str]:
        """What the Python SDK workers logged so far, per task manager or executor log."""
        return {p: p.read_text(errors="replace") for g in self.worker_logs_glob for p in sorted(self.logs.glob(g))}

    def model_loads(self) -> dict[str, list[tuple[str, int]]]:
        """Per task manager or executor log: ``(model, pid)`` of each model load logged by a
        Python worker, in order (a model loaded twice in one process appears twice)."""
        found: dict[str, list[tuple[str, int]]] = {}
        for path, text in self.worker_logs().items():
            for model, pid in re.findall(r"model (\S+) \(\S+\) loaded in [\d.]+ s \(process (\d+)\)", text):
                found.setdefault(path.relative_to(self.logs).as_posix(), []).append((model, int(pid)))
        return found

    def explain(self) -> str:
        """Where the logs are, and their last lines: for the message of a failing assertion."""
        parts = [f"{self.engine} cluster logs in {self.logs}"]
        for path in sorted(self.logs.rglob("*")):  # the processes' logs, not the engines' blobs and jars
            if path.is_file() and path.stat().st_size and (path.suffix in (".log", ".out") or path.name == "stderr"):
                tail = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.relative_to(self.logs)}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop(proc)


def _processes():
    """``(pid, command line)`` of every process that can be read."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes()
            except OSError:
                continue


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _start(command: list[str], log: Path, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


def _start_job_server(procs: dict, jar: str, master: list[str], job_port: int, folder: Path, env: dict) -> None:
    """Beam's job server for an engine (``master``: the flag naming the engine's master), on
    ``job_port``, without an expansion service; added to ``procs`` once it listens."""
    procs["job-server"] = _start(
        ["java", "-jar", jar, *master, "--job-port", str(job_port), "--artifact-port", "0", "--expansion-port", "-1",
         "--artifacts-dir", str(folder / "artifacts")], folder / "job-server.log", env)
    wait_until(lambda: listening(job_port), f"Beam's job server ({os.path.basename(jar)})", list(procs.values()))


def _engine_env(pieces: dict, **extra) -> dict:
    """The environment of the engine's processes: the engines' Python first on the PATH (the
    boot program runs the SDK worker with it), no cloud metadata lookups."""
    python_bin = os.path.dirname(pieces["python"])
    return {**os.environ, **NO_METADATA, "PATH": f"{python_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1", **extra}


def _flink_config(pieces: dict, folder: Path, rpc: int, rest: int, restarts: bool) -> Path:
    """A Flink configuration for a one-machine cluster on 127.0.0.1: the distribution's Java
    options (what Java 17 needs), fixed JobManager ports, small memory, network buffers for
    the job's shuffles, and the restart strategy docs/runners.md recommends (``restarts``) or
    Flink's default for a batch job, none."""
    shipped = (Path(pieces["flink_home"]) / "conf" / "config.yaml").read_text()
    java_opts = re.search(r"^\s*all: (.*)$", shipped, re.M)[1]
    conf = folder / "conf"
    conf.mkdir()
    for name in ("log4j.properties", "log4j-console.properties"):
        shutil.copy(Path(pieces["flink_home"]) / "conf" / name, conf / name)
    restart_strategy = ("{type: fixed-delay, fixed-delay: {attempts: 10, delay: 10 s}}" if restarts
                        else "{type: none}")
    (conf / "config.yaml").write_text(f"""\
env:
  java:
    opts:
      all: {java_opts}
jobmanager:
  bind-host: 127.0.0.1
  rpc: {{address: 127.0.0.1, port: {rpc}}}
  memory: {{process: {{size: 1024m}}}}
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  numberOfTaskSlots: 1
  memory:
    process: {{size: 1536m}}
    network: {{min: 256mb, max: 256mb}}
parallelism: {{default: 2}}
restart-strategy: {restart_strategy}
heartbeat: {{interval: 3000, timeout: 15000}}
rest: {{address: 127.0.0.1, bind-address: 127.0.0.1, port: {rest}}}
blob: {{server: {{port: "0"}}}}
io: {{tmp: {{dirs: {folder / "tmp"}}}}}
""")
    return conf


def start_flink(folder: Path, restarts: bool = True) -> Cluster:
    """A Flink cluster; ``restarts``: with the restart strategy docs/runners.md recommends (else
    a job fails when it loses a TaskManager)."""
    pieces = engine_pieces()
    rpc, rest, job_port = free_port(), free_port(), free_port()
    conf = _flink_config(pieces, folder, rpc, rest, restarts)
    (folder / "tmp").mkdir()
    home = Path(pieces["flink_home"])
    env = _engine_env(pieces, FLINK_HOME=str(home), FLINK_CONF_DIR=str(conf), FLINK_LOG_DIR=str(folder),
                      FLINK_PID_DIR=str(folder))
    procs = {"jobmanager": _start([str(home / "bin" / "jobmanager.sh"), "start-foreground"],
                                  folder / "jobmanager.out", env)}
    cluster = Cluster("flink", pieces["python"], [], [], folder, procs, ("flink-*-taskexecutor-*.log",))
    try:
        wait_until(lambda: listening(rest), "Flink JobManager", list(procs.values()))

        def start_task_manager(name: str) -> None:
            procs[name] = _start([str(home / "bin" / "taskmanager.sh"), "start-foreground"], folder / f"{name}.out", env)

        cluster.start_worker = start_task_manager
        cluster.rest = f"http://127.0.0.1:{rest}"
        for i in (1, 2):  # two TaskManagers, each its own JVM
            start_task_manager(f"taskmanager{i}")

        def two_task_managers() -> bool:
            try:
                overview = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{rest}/overview", timeout=2).read())
            except urllib.error.HTTPError as exc:  # the REST port listens before the dispatcher serves: 503
                if exc.code == 503:
                    return False
                raise
            return overview["taskmanagers"] == 2

        wait_until(two_task_managers, "Flink TaskManagers", list(procs.values()))
        _start_job_server(procs, pieces["flink_job_server_jar"], ["--flink-master", f"127.0.0.1:{rest}"], job_port,
                          folder, env)
    except BaseException:
        cluster.stop()
        raise
    common = ["--environment_option", f"process_command={pieces['boot']}", "--parallelism", "2"]
    cluster.flags = [*common, "--job_endpoint", f"127.0.0.1:{job_port}"]
    cluster.jar_flags = [*common, "--flink_master", f"127.0.0.1:{rest}",
                         "--flink_job_server_jar", pieces["flink_job_server_jar"]]
    return cluster


def start_spark(folder: Path) -> Cluster:
    pieces = engine_pieces()
    master_port, ui_port, worker_ui, job_port = free_port(), free_port(), free_port(), free_port()
    home = Path(pieces["spark_home"])
    env = _engine_env(pieces, SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", SPARK_PUBLIC_DNS="127.0.0.1",
                      SPARK_LOG_DIR=str(folder), SPARK_WORKER_DIR=str(folder / "work"),
                      SPARK_LOCAL_DIRS=str(folder / "tmp"))
    spark_class = str(home / "bin" / "spark-class")
    master = f"spark://127.0.0.1:{master_port}"
    procs = {"master": _start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(master_port), "--webui-port", str(ui_port)], folder / "master.log", env)}
    cluster = Cluster("spark", pieces["python"], [], [], folder, procs, ("work/*/*/stderr",),
                      rest=f"http://127.0.0.1:{ui_port}")
    try:
        wait_until(lambda: listening(master_port), "Spark Master", list(procs.values()))
        procs["worker"] = _start([spark_class, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                                  "--cores", "2", "--memory", "4g", "--webui-port", str(worker_ui)],
                                 folder / "worker.log", env)

        def worker_registered() -> bool:
            return "Successfully registered with master" in (folder / "worker.log").read_text(errors="replace")

        wait_until(worker_registered, "Spark Worker", list(procs.values()))
        _start_job_server(procs, pieces["spark_job_server_jar"], ["--spark-master-url", master], job_port, folder, env)
    except BaseException:
        cluster.stop()
        raise
    common = ["--environment_option", f"process_command={pieces['boot']}"]
    cluster.flags = [*common, "--job_endpoint", f"127.0.0.1:{job_port}"]
    cluster.jar_flags = [*common, "--spark_master_url", master, "--spark_job_server_jar", pieces["spark_job_server_jar"]]
    return cluster
