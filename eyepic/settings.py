"""One typed settings object, read from ``EYEPIC_*`` environment variables.

Built once at start (CLI, app factory) and passed down; nothing else reads the
environment. Paths default to folders relative to the current working
directory so a clean clone works without configuration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def _to_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"not a boolean: {raw!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything configurable about Eyepic. Field ``x`` reads ``EYEPIC_X``."""

    data_dir: Path = Path("../shared/data")
    var_dir: Path = Path("var")  # caches, index, uploads: ignored by git
    model_dir: Path = Path("var/models")
    catalog_dir: Path | None = None  # the demo's catalog; default: train photos of clothing-small and -extra
    release_dir: Path = Path("models")  # released models (weights, cards, SHA256SUMS) that `eyepic demo` serves
    classifier_name: str = "classifier"
    detector_name: str = "detector"
    model_server: str = ""  # host:port of TF Serving; empty = in-process
    model_version_label: str = "stable"
    model_timeout_s: float = 10.0  # deadline of one model call, retries included
    model_retries: int = 2  # extra attempts on UNAVAILABLE only (a restart, a lost connection)
    model_retry_backoff_s: float = 0.05  # first backoff; doubles per attempt, jittered
    model_max_message_bytes: int = 64 * 1024 * 1024  # encoded images go over the wire
    model_metadata_dir: Path | None = None  # metadata.json of served exports; default model_dir
    grpc_port: int = 50051  # Eyepic's own gRPC API (eyepic serve-grpc)
    grpc_workers: int = 8  # threads answering gRPC API calls
    workers: int = 0  # gunicorn worker processes for `eyepic serve`; 0 = Flask's threaded server
    prometheus_multiproc_dir: Path | None = None  # set by `eyepic serve --workers N` for its workers
    # TensorFlow intra- and inter-op threads of each gunicorn worker running models in-process;
    # 0: the machine's cores divided among the workers (at least 1), so N workers never run
    # N x cores threads on the cores (bench.load: 4 clients p95 142 -> 104 ms on 2 cores)
    tf_threads: int = 0
    index: str = "embedded"  # embedded | elasticsearch
    index_name: str = "eyepic-items"
    es_url: str = "http://127.0.0.1:9200"
    es_num_candidates: int = 200  # HNSW candidates per shard: recall against latency
    es_hnsw_m: int = 16
    es_ef_construction: int = 100
    es_min_similarity: float = -1.0  # raw cosine cut-off inside kNN; -1 keeps everything
    es_rescore_oversample: float = 2.0  # re-rank k*x int8 hits on float vectors; 0 turns it off
    es_replicas: int = 0  # one node in dev and CI; raise in production
    es_timeout_s: float = 10.0
    # Bulk writes: documents per _bulk request, and requests in flight at once (the node builds
    # the HNSW graph of concurrent requests in parallel; bench.index_bench measures both)
    es_bulk_chunk: int = 1000
    es_bulk_threads: int = 2
    # An Elasticsearch writer lock whose heartbeat (renewed every quarter of this) is older is a
    # dead indexer's on another host (pod); on this host a dead holder's pid frees it at once
    index_lock_stale_s: float = 60.0
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # Origins whose pages may call the API from a browser, comma-separated ("*": any); none by default
    cors_origins: str = ""
    default_k: int = 24
    max_k: int = 100
    batch_size: int = 32
    min_garment_score: float = 0.25
    # How a detected garment gets its group (serving.analyzer.decide_labels): the
    # classifier's | the detector's class | joint evidence. Chosen by `eyepic evaluate search`.
    group_rule: str = "detector"
    duplicate_iou: float = 0.5  # same-group garments overlapping more are one; 0 keeps all
    cross_group_iou: float = 0.0  # garments of any groups overlapping more are one; 0 (default): off
    # A product photo's boxes are one garment (serving.analyzer.single_garment_layout): no box
    # below another (every pair shares product_overlap of the shorter's height) and their union
    # fills product_cover of the photo, or one box holds product_dominance of it. Tuned on train photos.
    product_cover: float = 0.4  # 0: never merge
    product_dominance: float = 1.0  # above 1: off
    product_overlap: float = 0.05
    product_one_group: bool = True  # boxes all of one detector class are one garment (a pair of shoes)
    # two garments are one, the whole photo, when the classifier is this sure of the whole photo's group
    # (serving.analyzer.DEFAULT_PRODUCT_WHOLE_CONFIDENCE); 0: never
    product_whole_confidence: float = 0.99
    # a product photo's one garment: the union of its boxes | the whole photo (then also for a photo
    # with a single detection); chosen by `eyepic evaluate search` (product p@10 0.62 against 0.49)
    product_box: str = "whole"
    # Per-user taste (taste.profile, services.recommend): events decay with this half-life; a shopper's
    # engaged items form up to taste_max_clusters clusters (a new one starts below taste_cluster_similarity
    # to every medoid: 0.65 x cosine + 0.35 x same color); items within taste_dislike_cosine of a
    # disliked item are never recommended;
    # taste_mmr_lambda trades relevance (1) against diversity (0); taste_affinity_weight scales the
    # group/type/color affinities; the cold-start popularity counts are recomputed every taste_popular_ttl_s.
    # Chosen by `eyepic evaluate recommender` on its tuning seeds.
    taste_half_life_days: float = 30.0
    taste_max_clusters: int = 5
    taste_cluster_similarity: float = 0.7
    taste_dislike_cosine: float = 0.8
    taste_mmr_lambda: float = 0.85
    taste_affinity_weight: float = 1.0
    taste_popular_ttl_s: float = 300.0
    # Complete the look: the compatibility model (default: release_dir/outfits/outfits.npz), candidates
    # retrieved per complementary group before the model re-scores them, and the MMR weight of variety
    outfits_model: Path | None = None
    outfit_candidates: int = 60
    outfit_diversity: float = 0.3
    crawl_contact_url: str = "https://github.com/eyepic/eyepic#crawler"  # named in the crawler's user agent
    crawl_user_agent: str = ""  # the whole user agent; default "EyepicBot/<version> (+crawl_contact_url)"
    # Shoppers' events (taste.events): sqlite | elasticsearch | memory; empty follows `index`
    # (embedded -> sqlite under var_dir, elasticsearch -> an index on es_url), so one setting
    # switches a deployment and several web pods never keep events on one pod's disk.
    events_store: str = ""
    events_index_name: str = "eyepic-events"  # Elasticsearch alias of the events index
    event_clock_skew_s: float = 300.0  # how far in the future a client's event timestamp may lie
    # Write access (services.access): API keys as a comma list and/or a file, one a line, each
    # "key" or "name:key" (at least 16 characters); none configured: only session tokens write.
    api_keys: str = ""
    api_keys_file: Path | None = None
    # HMAC secret for anonymous session tokens; empty: a 0600 file under var_dir/secrets,
    # created on first use, so every gunicorn worker signs with the same secret.
    session_secret: str = ""
    # Token buckets on writes (per second and burst; a rate of 0 turns that bucket off). Kept
    # per process: with N gunicorn workers a client may get up to N times these.
    rate_key_per_s: float = 50.0
    rate_key_burst: int = 200
    rate_ip_per_s: float = 5.0
    rate_ip_burst: int = 60
    rate_user_per_s: float = 2.0
    rate_user_burst: int = 60

    @property
    def index_dir(self) -> Path:
        return self.var_dir / "index"

    @property
    def cache_dir(self) -> Path:
        return self.var_dir / "cache"

    @property
    def reports_dir(self) -> Path:
        return self.var_dir / "reports"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Read ``EYEPIC_*`` variables; ``overrides`` win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"EYEPIC_{field.name.upper()}")
            if raw is None:
                continue
            values[field.name] = _parse(field, raw)
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if "Path" in str(field.type) and isinstance(value, str):
                object.__setattr__(self, field.name, Path(value))
        if self.index not in {"embedded", "elasticsearch"}:
            raise SettingsError(
                f"EYEPIC_INDEX must be 'embedded' or 'elasticsearch', not {self.index!r}"
            )
        if not 1 <= self.es_bulk_chunk <= 10_000:
            raise SettingsError("EYEPIC_ES_BULK_CHUNK must lie between 1 and 10000 documents")
        if not 1 <= self.es_bulk_threads <= 16:
            raise SettingsError("EYEPIC_ES_BULK_THREADS must lie between 1 and 16")
        if not 1 <= self.default_k <= self.max_k:
            raise SettingsError("EYEPIC_DEFAULT_K must lie between 1 and EYEPIC_MAX_K")
        if not 0 < self.port < 65536:
            raise SettingsError(f"EYEPIC_PORT out of range: {self.port}")
        if not 0 < self.grpc_port < 65536:
            raise SettingsError(f"EYEPIC_GRPC_PORT out of range: {self.grpc_port}")
        if self.group_rule not in {"classifier", "detector", "joint"}:
            raise SettingsError(
                f"EYEPIC_GROUP_RULE must be 'classifier', 'detector' or 'joint', not {self.group_rule!r}"
            )
        if self.product_box not in {"union", "whole"}:
            raise SettingsError(f"EYEPIC_PRODUCT_BOX must be 'union' or 'whole', not {self.product_box!r}")
        if not 1 <= self.outfit_candidates <= 1000:
            raise SettingsError(f"EYEPIC_OUTFIT_CANDIDATES must be from 1 to 1000, not {self.outfit_candidates}")
        if not 0 <= self.outfit_diversity < 1:
            raise SettingsError(f"EYEPIC_OUTFIT_DIVERSITY must be from 0 to below 1, not {self.outfit_diversity}")
        if self.index_lock_stale_s <= 0:
            raise SettingsError("EYEPIC_INDEX_LOCK_STALE_S must be > 0")
        if not 0 <= self.tf_threads <= 256:
            raise SettingsError(f"EYEPIC_TF_THREADS must be from 0 (automatic) to 256, not {self.tf_threads}")
        if self.model_retries < 0 or self.model_timeout_s <= 0:
            raise SettingsError("EYEPIC_MODEL_RETRIES must be >= 0 and EYEPIC_MODEL_TIMEOUT_S > 0")
        if self.taste_half_life_days <= 0 or self.taste_popular_ttl_s < 0:
            raise SettingsError("EYEPIC_TASTE_HALF_LIFE_DAYS must be > 0 and EYEPIC_TASTE_POPULAR_TTL_S >= 0")
        if not 1 <= self.taste_max_clusters <= 20:
            raise SettingsError(f"EYEPIC_TASTE_MAX_CLUSTERS must be from 1 to 20, not {self.taste_max_clusters}")
        for name in ("taste_cluster_similarity", "taste_dislike_cosine", "taste_mmr_lambda",
                     "product_whole_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise SettingsError(f"EYEPIC_{name.upper()} must lie between 0 and 1, not {getattr(self, name)}")
        if self.taste_affinity_weight < 0:
            raise SettingsError(f"EYEPIC_TASTE_AFFINITY_WEIGHT must be >= 0, not {self.taste_affinity_weight}")
        if self.events_store not in {"", "sqlite", "elasticsearch", "memory"}:
            raise SettingsError(f"EYEPIC_EVENTS_STORE must be 'sqlite', 'elasticsearch', 'memory' or empty "
                                f"(follow EYEPIC_INDEX), not {self.events_store!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,200}", self.events_index_name):
            raise SettingsError(f"EYEPIC_EVENTS_INDEX_NAME must be a lower-case Elasticsearch name "
                                f"(a-z 0-9 . _ -), not {self.events_index_name!r}")
        if self.event_clock_skew_s < 0:
            raise SettingsError("EYEPIC_EVENT_CLOCK_SKEW_S must be >= 0")
        for name in ("rate_key", "rate_ip", "rate_user"):
            if getattr(self, f"{name}_per_s") < 0 or getattr(self, f"{name}_burst") < 1:
                raise SettingsError(f"EYEPIC_{name.upper()}_PER_S must be >= 0 and EYEPIC_{name.upper()}_BURST >= 1")
        if self.session_secret and len(self.session_secret) < 32:
            raise SettingsError("EYEPIC_SESSION_SECRET must hold at least 32 characters")
        parse_api_keys(self.api_keys, "EYEPIC_API_KEYS")

    @property
    def events_backend(self) -> str:
        """The events store to open: ``events_store``, or the one that goes with ``index``."""
        return self.events_store or ("sqlite" if self.index == "embedded" else "elasticsearch")

    @property
    def events_path(self) -> Path:
        return self.var_dir / "events" / "events.sqlite"

    @property
    def session_secret_path(self) -> Path:
        return self.var_dir / "secrets" / "session.key"

    @property
    def outfits_model_path(self) -> Path:
        """The compatibility model complete-the-look serves."""
        return self.outfits_model or self.release_dir / "outfits" / "outfits.npz"

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """``cors_origins`` split and trimmed (empty: no cross-origin browser calls)."""
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    @property
    def crawl_agent(self) -> str:
        """The user agent the crawler sends and matches robots.txt groups with."""
        return self.crawl_user_agent or f"EyepicBot/0.1 (+{self.crawl_contact_url})"

    @property
    def metadata_dir(self) -> Path:
        """Where a gRPC model client reads each served version's metadata.json."""
        return self.model_metadata_dir or self.model_dir

    @property
    def demo_catalog(self) -> Path:
        """Where the demo writes its catalog manifest when ``catalog_dir`` is not set."""
        return self.var_dir / "catalog" / "demo.jsonl"


MIN_API_KEY_CHARS = 16


def parse_api_keys(text: str, where: str) -> list[tuple[str, str]]:
    """``(name, key)`` pairs from a comma list or a file's lines (``key`` or ``name:key``; ``#`` comments).

    A key without a name is named by its position (``key-1``...), never by
    the key itself, so logs and metrics can say which key wrote.
    """
    keys: list[tuple[str, str]] = []
    for raw in text.replace("\n", ",").split(","):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, key = entry.partition(":")
        if not sep:
            name, key = f"key-{len(keys) + 1}", entry
        name, key = name.strip(), key.strip()
        if len(key) < MIN_API_KEY_CHARS:
            raise SettingsError(f"{where}: API key {name!r} is shorter than {MIN_API_KEY_CHARS} characters")
        keys.append((name, key))
    return keys


def _parse(field: dataclasses.Field, raw: str) -> Any:
    kind = str(field.type)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _to_bool(raw)
        if "Path" in kind:
            return Path(raw) if raw else None
        return raw
    except ValueError as exc:
        raise SettingsError(f"EYEPIC_{field.name.upper()}: {exc}") from None
