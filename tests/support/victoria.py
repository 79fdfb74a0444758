"""A real VictoriaMetrics (Debian package `victoria-metrics`) on a loopback port, for tests.

Single-node VictoriaMetrics speaks Prometheus' query API on its own port, so
`PrometheusSource` and `rollout gate` point at it unchanged. The server gets its own
data dir and log under `workdir` and is stopped by the pid we started.

Flags that matter here:
- `-search.latencyOffset=0s`: by default VictoriaMetrics hides the newest 30 s of data
  from instant values and `query_range` (samples may still be arriving); 1.79 still
  returns them as a range selector's raw samples, which is what the counts read (a test
  pins both). The synthetic data lies hours in the past, so the offset changes nothing
  for it; it is 0 so every query sees what Prometheus would.
- `-retentionPeriod=100y`: the data is hours old; nothing is ever deleted under a test.
- `-search.disableCache`: the response cache would keep an answer computed before the
  import had landed (VictoriaMetrics recommends it while backfilling).
- No `-dedup.minScrapeInterval`: every imported sample stays as it was written.

Data goes in through `/api/v1/import/prometheus` (Prometheus text format with
millisecond timestamps): `prometheus_text` turns a synthetic dataset's OpenMetrics
(seconds) into it, so the same `Truth` checks both backends.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rollout.demo.procs import ManagedProcess, ProcessError, free_port
from tests.support.synthetic import Dataset

READY_TIMEOUT = 30.0
IMPORT_CHUNK = 8 * 1024 * 1024  # bytes of text per import request


def victoria_binary() -> str:
    found = shutil.which("victoria-metrics")
    if found is None:
        raise ProcessError(
            "victoria-metrics is not on PATH: install it (Debian/Ubuntu: "
            "apt-get install -y victoria-metrics), or run `make test`, which does"
        )
    return found


def prometheus_text(openmetrics: str) -> Iterator[str]:
    """Lines of Prometheus text format for `/api/v1/import/prometheus`.

    OpenMetrics timestamps are seconds (maybe fractional), the text format's are integer
    milliseconds; comments (`# TYPE`, `# EOF`) are dropped. Label values may hold
    spaces, so the timestamp is the text after the last space."""
    for line in openmetrics.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, stamp = line.rpartition(" ")
        yield f"{head} {round(float(stamp) * 1000)}"


@dataclass
class RunningVictoria:
    """A VictoriaMetrics we started; `url` is its base URL on 127.0.0.1."""

    url: str
    port: int
    data_dir: Path
    argv: list[str]
    log_path: Path
    process: ManagedProcess = field(repr=False)

    def start(self) -> RunningVictoria:
        if self.process.alive():
            return self
        self.process = ManagedProcess("victoria-metrics", self.argv, self.log_path).start()
        self.process.wait_until(
            lambda: httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200,
            timeout=READY_TIMEOUT,
        )
        return self

    def stop(self) -> None:
        """SIGTERM by pid (SIGKILL after a grace period); the data dir stays."""
        self.process.stop(grace=10.0)

    def import_lines(self, lines: Iterator[str]) -> int:
        """POST text-format lines to `/api/v1/import/prometheus`, then make them searchable.

        Returns how many samples were sent."""
        sent = 0
        with httpx.Client(base_url=self.url, timeout=120.0) as client:
            chunk: list[str] = []
            size = 0
            for line in lines:
                chunk.append(line)
                size += len(line) + 1
                if size >= IMPORT_CHUNK:
                    sent += self._post(client, chunk)
                    chunk, size = [], 0
            if chunk:
                sent += self._post(client, chunk)
            # Imported rows sit in an in-memory buffer for up to a second: flush them.
            client.get("/internal/force_flush").raise_for_status()
        return sent

    def _post(self, client: httpx.Client, lines: list[str]) -> int:
        body = ("\n".join(lines) + "\n").encode()
        response = client.post("/api/v1/import/prometheus", content=body)
        if response.status_code >= 300:
            raise ProcessError(
                f"VictoriaMetrics refused the import ({response.status_code}): "
                f"{response.text[:500]}\n{self.process.log_tail()}"
            )
        return len(lines)

    def import_dataset(self, dataset: Dataset) -> int:
        """Import a synthetic dataset and wait until all its samples are searchable."""
        sent = self.import_lines(prometheus_text(dataset.openmetrics))
        self.process.wait_until(lambda: self.sample_count(dataset) >= sent, timeout=60.0)
        return sent

    def sample_count(self, dataset: Dataset) -> int:
        """How many raw samples in the dataset's span are searchable now."""
        span = dataset.end - dataset.start + 1
        answer = httpx.get(
            f"{self.url}/api/v1/query",
            params={
                "query": f'sum(count_over_time({{__name__=~".+"}}[{span:.0f}s]))',
                "time": f"{dataset.end:.3f}",
            },
            timeout=60.0,
        ).json()
        result = answer["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def __enter__(self) -> RunningVictoria:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_victoria(
    workdir: Path, *, port: int | None = None, latency_offset: str = "0s"
) -> RunningVictoria:
    """Start VictoriaMetrics on 127.0.0.1 with its own data dir; return once `/health` is OK."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    data_dir = workdir / "vm-data"
    argv = [
        victoria_binary(),
        f"-storageDataPath={data_dir}",
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-search.latencyOffset={latency_offset}",
        "-retentionPeriod=100y",
        "-search.disableCache",
    ]
    log_path = workdir / "victoria-metrics.log"
    running = RunningVictoria(
        url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        argv=argv,
        log_path=log_path,
        process=ManagedProcess("victoria-metrics", argv, log_path),
    )
    try:
        return running.start()
    except ProcessError:
        running.stop()
        raise


def victoria_with(dataset: Dataset, workdir: Path) -> RunningVictoria:
    """VictoriaMetrics holding `dataset` (all of it searchable). Stop it when done."""
    running = start_victoria(workdir)
    try:
        running.import_dataset(dataset)
    except BaseException:
        running.stop()
        raise
    return running
