"""The run store's tables (SQLModel on SQLite).

Why one module: every reader (exports, the TUI, `sagetui runs`, people with
`sqlite3`) depends on these names, so they live in one place and are documented
column by column in docs/store.md. Units are in the column names: `_ms` is
milliseconds, `_us` microseconds, `_s` seconds; times of day are UTC ISO-8601
strings (`started`, `ended`, ...) and run-relative times are seconds (`t_s`).

Changing a table means adding a migration in store/migrations.py and bumping
SCHEMA_VERSION (store/constants.py).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from store.constants import (  # noqa: F401  (re-exported: the names readers know)
    ALL_CLASSES,
    REQUEST_CLASSES,
    RUN_STATUSES,
    SCHEMA_VERSION,
    TERMINAL_STATUSES,
)
from vocab import Request


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself (schema_version, created_by)."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class Experiment(SQLModel, table=True):
    """A sweep or a suite: the group that runs belong to."""

    __tablename__ = "experiment"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    kind: str = "sweep"  # sweep | suite | single
    suite: str | None = Field(default=None, index=True)  # suite name when kind == suite
    spec: str = ""  # the TOML text the experiment was started from
    created: str = ""  # UTC ISO-8601
    deleted: bool = False


class Hardware(SQLModel, table=True):
    """One row per distinct machine fingerprint (stored once, shared by runs)."""

    __tablename__ = "hardware"
    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(unique=True, index=True)  # sha256 of the fields below
    hostname: str = ""
    os: str = ""
    cpu_model: str = ""
    cpu_cores_physical: int = 0
    cpu_cores_logical: int = 0
    memory_bytes: int = 0
    gpus_json: str = "[]"  # [{"name","memory_bytes","driver","cuda"}]
    details_json: str = "{}"


class Run(SQLModel, table=True):
    """One measured run: one point of a sweep times one repetition."""

    __tablename__ = "run"
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id", index=True)
    name: str = Field(default="", index=True)
    mode: str = "sim"  # sim | live
    status: str = Field(default="created", index=True)
    status_reason: str = ""
    config_json: str = "{}"  # the resolved config (every default filled in)
    config_hash: str = Field(default="", index=True)  # sha256 of config minus seed/repetition
    seed: int = 0
    repetition: int = 0
    tags: str = ""  # comma-separated, also mirrored in run_tag for querying
    pid: int | None = None
    host: str = ""
    heartbeat: float | None = None  # unix time of the writer's last sign of life
    created: str = ""
    started: str | None = Field(default=None, index=True)
    ended: str | None = None
    sagetui_version: str = ""
    git_sha: str = ""
    git_dirty: bool = False
    software_json: str = "{}"  # {"python": ..., "vllm": ..., "torch": ...}
    hardware_id: int | None = Field(default=None, foreign_key="hardware.id")
    # Progress, so live monitors need not scan samples.
    duration_s: float = 0.0  # planned measurement duration (after warm-up)
    warmup_s: float = 0.0
    requests_planned: int = 0
    requests_done: int = 0
    deleted: bool = False
    # v4: the run this one re-executes (`sagetui runs rerun`); NULL for a first run. No
    # FOREIGN KEY clause: SQLite's ALTER TABLE cannot add one, so upgraded and new stores
    # would differ; RunWriter checks the id and a purge unlinks the reruns.
    rerun_of: int | None = Field(default=None, index=True)


class RunListing(SQLModel, table=True):
    """v4: a run's summaries rendered for `runs list --format json|csv` (store/listing.py).

    A copy of the `summary` rows in the listing's shapes, written with them by
    RunWriter.add_summaries; a run without a row is rendered from `summary`.
    """

    __tablename__ = "run_listing"
    run_id: int = Field(foreign_key="run.id", primary_key=True)
    summary_json: str = "{}"  # {class: {issued, ..., metrics, extra}} as in `runs list --format json`
    flat_keys_json: str = "[]"  # the CSV columns of this run's flattened summary, sorted
    flat_csv: str = ""  # their values, as CSV cells in that order


class RunTag(SQLModel, table=True):
    __tablename__ = "run_tag"
    run_id: int = Field(foreign_key="run.id", primary_key=True)
    tag: str = Field(primary_key=True, index=True)


class Backend(SQLModel, table=True):
    """An engine a run used (launched by sagetui or given by URL)."""

    __tablename__ = "backend"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    name: str = ""
    role: str = "llm"  # llm | embedding | both
    engine_kind: str = ""  # vllm | vllm-cpu | sentence-transformers | sim | openai
    device: str = "cpu"  # cpu | gpu
    device_kind: str = ""  # e.g. H100, A100-80GB, x86-64
    model: str = ""
    url: str = ""
    launch_args_json: str = "[]"
    engine_version: str = ""
    price_per_hour: float = 0.0
    max_concurrency: int = 0
    params_json: str = "{}"  # simulator preset / cost model parameters


class Histogram(SQLModel, table=True):
    """An HDR histogram (V2 encoding, microseconds, 3 significant digits).

    window_start_s is None for the whole measurement window, else the start of a
    10 s window (run-relative seconds, warm-up excluded).
    """

    __tablename__ = "histogram"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    metric: str  # ttft | e2e | tpot | itl | queue_wait | lateness | ttft_sent | e2e_sent | ...
    request_class: str  # chat | completion | embedding | pipeline | all
    window_start_s: float | None = None
    window_s: float | None = None
    encoded: bytes = b""
    count: int = 0
    min_us: int = 0
    max_us: int = 0
    mean_us: float = 0.0


class Summary(SQLModel, table=True):
    """Per run x request class: the numbers tables are built from.

    `metrics_json` holds, for each latency metric, its distribution in ms:
    {"ttft": {"p50":..,"p90":..,"p95":..,"p99":..,"p999":..,"mean":..,"count":..}, ...}
    Query with SQLite's JSON1: json_extract(metrics_json, '$.ttft.p99').
    """

    __tablename__ = "summary"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    request_class: str
    issued: int = 0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    throughput_rps: float = 0.0  # completed per second of the measurement window
    throughput_tok_s: float = 0.0  # output tokens per second (embedding: input tokens)
    slo_attainment: float | None = None  # met / issued, failures and rejections are misses
    goodput_rps: float = 0.0
    target_rate_rps: float | None = None
    achieved_rate_rps: float | None = None  # sent per second
    lateness_p99_ms: float | None = None
    metrics_json: str = "{}"
    extra_json: str = "{}"  # fairness, control-plane overhead, pacing accuracy, ...


class Sample(SQLModel, table=True):
    """One per run-second, written while the run goes (the live bus)."""

    __tablename__ = "sample"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    t_s: float  # seconds since the run's start (warm-up included)
    offered_rps: float = 0.0
    achieved_rps: float = 0.0  # completions in this second
    in_flight: int = 0
    errors: int = 0
    queue_depth_json: str = "{}"  # {"chat": n, "embedding": n}
    backends_json: str = "{}"  # {"name": {"running","waiting","kv_use","in_flight","util"}}
    latency_json: str = "{}"  # rolling {"chat": {"ttft_p50":..,"ttft_p99":..,"e2e_p99":..}}
    slo_met: int = 0
    done: int = 0


class Event(SQLModel, table=True):
    """Something that happened during a run: fault injected, engine down/up, warning."""

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    t_s: float
    kind: str  # fault | engine_down | engine_up | warning | info
    subject: str = ""  # backend name, etc.
    message: str = ""
    data_json: str = "{}"


class RequestRow(SQLModel, table=True):
    """Optional raw per-request records (`raw = true` in the run config): a
    vocab.Request's columns (`request_row` maps them).

    Stamps are seconds relative to the run's start; None where not reached.
    """

    __tablename__ = "request"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    request_id: str = ""
    request_class: str = ""
    client_id: str = ""
    priority: int = 2
    status: str = ""  # completed | failed | rejected
    reason: str = ""
    backend: str = ""
    t_intended: float = 0.0
    t_sent: float | None = None
    t_received: float | None = None  # by the gateway / control plane
    t_dispatched: float | None = None
    t_first_token: float | None = None
    t_done: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    n_texts: int = 0
    slo_ttft_ms: float | None = None
    slo_e2e_ms: float | None = None
    slo_met: bool | None = None
    overhead_us: float | None = None
    # v2: pipeline stages name their pipeline; the gateway's queue-wait header.
    parent_id: str | None = None
    queue_wait_ms: float | None = None
    # v3: the TPOT SLO (ms per output token after the first) and the SLO tier drawn.
    slo_tpot_ms: float | None = None
    slo_tier: str = ""  # "" when the request's class has no tiers
    # v5: a pipeline job's kind (on the job and its stages) and a stage's name.
    pipeline: str = ""
    stage: str = ""


# Every table of the store, in dependency order (migrations create them in this order).
# SQLModel sets `__table__` on table classes without declaring it to type checkers.
TABLES = [m.__table__ for m in (Meta, Experiment, Hardware, Run, RunTag,  # type: ignore[union-attr]
                                Backend, Histogram, Summary, Sample, Event, RequestRow, RunListing)]


def request_row(r: Request) -> dict:
    """The `request` table's columns (no id / run_id) for one request: the one place
    the record's fields are mapped to the store's."""
    return {
        "request_id": r.id, "request_class": r.cls, "client_id": r.client_id,
        "priority": r.priority, "status": r.status, "reason": r.reason, "backend": r.backend,
        "t_intended": r.t_intended, "t_sent": r.t_sent, "t_received": r.t_received,
        "t_dispatched": r.t_dispatched, "t_first_token": r.t_first_token, "t_done": r.t_done,
        "prompt_tokens": r.prompt_tokens, "output_tokens": r.output_tokens,
        "n_texts": r.n_texts, "slo_ttft_ms": r.slo_ttft_ms, "slo_e2e_ms": r.slo_e2e_ms,
        "slo_met": r.slo_met(), "overhead_us": r.overhead_us, "parent_id": r.parent_id,
        "queue_wait_ms": r.queue_wait_ms, "slo_tpot_ms": r.slo_tpot_ms, "slo_tier": r.slo_tier,
        "pipeline": r.pipeline, "stage": r.stage,
    }
