"""Configuration from environment variables (12-factor); documented in the README."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from delivery.auth import KeyRing, split_keys

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_CONTENT_DIR = DEMO_DIR / "content"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "tessera"


class Settings(BaseSettings):
    """Every setting, read from the environment (names are the upper-cased fields)."""

    @field_validator(
        "cms", "cookie_same_site", "persisted_queries", "log_format", "proxy_header", mode="before"
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        # Names of choices are case-insensitive, as the variables' names are.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    mongodb_uri: SecretStr | None = Field(
        default=None, description="MongoDB URI; unset starts the embedded SecantusDB server."
    )
    mongodb_database: str = Field(default="tessera", min_length=1)
    cms: Literal["filesystem", "contentful", "strapi", "sanity", "directus"] = "filesystem"
    content_dir: Path = DEMO_CONTENT_DIR
    cache_url: str = "memory://"
    content_ttl: float = Field(default=60.0, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    profile_budget_ms: float = Field(default=50.0, gt=0)
    profile_cache_mb: float = Field(default=128.0, ge=0)
    profile_read_concurrency: int = Field(default=32, ge=1)
    state_dir: Path = Field(default_factory=_default_state_dir)
    embedded_db_hang_seconds: float = Field(
        default=60.0,
        ge=0,
        description="The embedded server is killed and restarted after answering nothing this "
        "long; 0 never.",
    )
    shutdown_timeout: float = Field(
        default=20.0,
        ge=2,
        description="Seconds stopping may take: requests in flight, then flushing queues.",
    )
    seed_demo: bool = True
    audience_refresh_seconds: float = Field(default=30.0, gt=0)
    response_cache_size: int = Field(default=4096, ge=0)
    graphiql: bool = True
    max_query_depth: int = Field(default=12, ge=2)
    max_query_cost: int = Field(default=5000, ge=10)
    max_query_fields: int = Field(default=500, ge=10)
    max_query_aliases: int = Field(default=30, ge=0)
    max_query_tokens: int = Field(default=3000, ge=100)
    introspection: bool = True
    max_graphql_body_bytes: int = Field(default=65_536, ge=1024)
    cookie_secure: bool = False
    cookie_same_site: Literal["lax", "strict", "none"] = "lax"
    # Edge delivery (issue 11).
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed to call with credentials; * any."
    )
    page_smaxage: int = Field(default=60, ge=0)
    page_stale_while_revalidate: int = Field(default=30, ge=0)
    page_stale_if_error: int = Field(default=86_400, ge=0)
    edge_key_secret: SecretStr = Field(
        default=SecretStr(""), description="HMAC key of edge keys; replicas must share it."
    )
    persisted_queries: Literal["apq", "trusted", "off"] = "apq"
    persisted_queries_manifest: Path | None = None
    admin_keys: SecretStr = Field(
        default=SecretStr(""), description="Comma-separated admin keys (full access)."
    )
    publishable_keys: SecretStr = Field(
        default=SecretStr(""), description="Comma-separated browser-safe keys (ingest only)."
    )
    preview_tokens: SecretStr = Field(
        default=SecretStr(""), description="Comma-separated tokens that allow page previews."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Observability (issue 12): logs, per-operation metrics, optional tracing.
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json: one JSON object per line with a request id."
    )
    metrics_operation_names: int = Field(
        default=100,
        ge=0,
        description="GraphQL operation names kept as metric labels (the first N seen).",
    )
    otel_traces_enabled: bool | None = Field(
        default=None,
        description="OpenTelemetry tracing; unset: on when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )
    otel_exporter_otlp_endpoint: str = Field(
        default="", description="OTLP/HTTP collector base URL (traces go to <url>/v1/traces)."
    )
    # Content cache and CMS adapters (issue 4).
    content_stale_while_revalidate: float = Field(default=300.0, ge=0)
    content_stale_if_error: float = Field(default=86400.0, ge=0)
    content_not_found_ttl: float = Field(default=5.0, ge=0)
    cms_timeout: float = Field(default=5.0, gt=0)
    cms_retries: int = Field(default=2, ge=0, le=10)
    cms_webhook_secret: SecretStr = Field(
        default=SecretStr(""), description="Secret of the publish webhook (bearer or HMAC key)."
    )
    contentful_space_id: str = ""
    contentful_environment: str = "master"
    contentful_access_token: SecretStr = SecretStr("")
    contentful_preview_token: SecretStr = SecretStr("")
    strapi_url: str = ""
    strapi_token: SecretStr = SecretStr("")
    sanity_project_id: str = ""
    sanity_dataset: str = "production"
    sanity_api_version: str = "v2025-02-19"
    sanity_token: SecretStr = SecretStr("")
    directus_url: str = ""
    directus_token: SecretStr = SecretStr("")
    # Event ingestion and profiles (issue 5).
    event_retention_days: float = Field(default=90.0, gt=0)
    interest_half_life_days: float = Field(default=30.0, gt=0)
    max_event_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_events_per_batch: int = Field(default=500, ge=1)
    event_max_skew_seconds: float = Field(default=86_400.0, ge=0)
    event_commit_window_ms: float = Field(default=2.0, ge=0)
    default_analytics_consent: bool = True
    default_personalization_consent: bool = True
    block_templates_dir: Path | None = Field(
        default=None, description="Folder of <type>.html.j2 overriding the shipped block HTML."
    )
    # Model scoring and exposure logging (issue 6).
    exploration_epsilon: float = Field(
        default=0.1, ge=0, le=1, description="ε-greedy exploration rate when a model scores."
    )
    cold_start_epsilon: float = Field(
        default=0.0, ge=0, le=1, description="Exploration rate while no model is active."
    )
    scoring_budget_ms: float = Field(default=15.0, gt=0)
    model_poll_seconds: float = Field(default=5.0, gt=0)
    drift_interval_seconds: float = Field(default=3600.0, ge=0)
    drift_window_hours: float = Field(default=24.0, gt=0)
    experiment_sweep_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How often every published page is read for the experiments edge keys cover.",
    )
    model_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key of model artifacts; empty: one generated under STATE_DIR.",
    )
    # Both count exposure documents, one per served page view (not per block).
    exposure_queue_size: int = Field(default=10_000, ge=1)
    exposure_batch_size: int = Field(default=100, ge=1)
    exposure_retention_days: float = Field(default=400.0, gt=0)
    # Rate limits (issue 10): a token bucket per client IP and per API key, per route
    # family; `*_RATE` tokens per second (0 turns that budget off), `*_BURST` tokens at most.
    rate_limit_enabled: bool = True
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated proxy IPs/CIDRs whose forwarding header is read.",
    )
    proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    rate_limit_exempt: str = Field(
        default="127.0.0.0/8,::1",
        description="Comma-separated client IPs/CIDRs without a per-IP budget (keys still count).",
    )
    rate_limit_graphql_ip_rate: float = Field(default=100.0, ge=0)
    rate_limit_graphql_ip_burst: int = Field(default=300, ge=1)
    rate_limit_graphql_key_rate: float = Field(default=1000.0, ge=0)
    rate_limit_graphql_key_burst: int = Field(default=2000, ge=1)
    rate_limit_events_ip_rate: float = Field(default=50.0, ge=0)
    rate_limit_events_ip_burst: int = Field(default=200, ge=1)
    rate_limit_events_key_rate: float = Field(default=2000.0, ge=0)
    rate_limit_events_key_burst: int = Field(default=10_000, ge=1)
    rate_limit_webhooks_ip_rate: float = Field(default=20.0, ge=0)
    rate_limit_webhooks_ip_burst: int = Field(default=200, ge=1)
    # Experiments (issue 14).
    experiments_holdout: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Share of visitors in the global holdout: never in any experiment.",
    )
    sticky_bucket_queue_size: int = Field(default=10_000, ge=1)
    # Segments and recommendations (issue 15).
    catalog_refresh_seconds: float = Field(
        default=300.0, gt=0, description="How often the product catalogue is read from the CMS."
    )
    trending_hours: float = Field(
        default=72.0, gt=0, description="The recent window `trending` recommendations count."
    )
    trending_refresh_seconds: float = Field(
        default=300.0, gt=0, description="How often the trending products are recounted."
    )

    # Edge purge (issue 11): publish webhooks purge these edge caches by surrogate key.
    varnish_urls: str = Field(
        default="",
        description="Comma-separated Varnish URLs that accept xkey PURGE requests.",
    )
    fastly_service_id: str = ""
    fastly_api_token: SecretStr = Field(
        default=SecretStr(""), description="Fastly API token with the purge_select scope."
    )
    fastly_soft_purge: bool = False
    fastly_api_url: str = "https://api.fastly.com"
    cloudflare_zone_id: str = ""
    cloudflare_api_token: SecretStr = Field(
        default=SecretStr(""), description="Cloudflare API token with Cache Purge permission."
    )
    cloudflare_api_url: str = "https://api.cloudflare.com/client/v4"
    purge_timeout: float = Field(default=2.0, gt=0, description="Seconds per purge request.")
    purge_retries: int = Field(default=3, ge=0, le=10)
    purge_deadline: float = Field(
        default=2.0, ge=0, description="Seconds a webhook waits for its edge purge."
    )

    def key_ring(self) -> KeyRing:
        """The configured keys, ready to authenticate requests."""
        return KeyRing(
            admin=split_keys(self.admin_keys.get_secret_value()),
            preview=split_keys(self.preview_tokens.get_secret_value()),
            publishable=split_keys(self.publishable_keys.get_secret_value()),
        )

    @property
    def tracing_enabled(self) -> bool:
        """Whether to trace: OTEL_TRACES_ENABLED, else whether an OTLP endpoint is set."""
        if self.otel_traces_enabled is not None:
            return self.otel_traces_enabled
        return bool(self.otel_exporter_otlp_endpoint)

    @property
    def drain_seconds(self) -> int:
        """How long `serve` lets requests in flight finish at shutdown (a quarter)."""
        return max(1, round(self.shutdown_timeout / 4))

    @property
    def flush_seconds(self) -> float:
        """How long the services may then flush their queues (the rest, shared)."""
        return self.shutdown_timeout - self.drain_seconds

    @property
    def profile_budget(self) -> float:
        """The profile time budget in seconds."""
        return self.profile_budget_ms / 1000.0

    @property
    def scoring_budget(self) -> float:
        """The scoring time budget in seconds."""
        return self.scoring_budget_ms / 1000.0
