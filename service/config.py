"""Service settings: one pydantic-settings class, read from `HOTLINE_*` environment variables.

The embedded default needs no server: SQLite under `./var/` for the database and kombu's SQLAlchemy
transport on another SQLite file for the Celery broker. Give a `postgresql+psycopg://` database URL
and an `amqp://` broker URL to run on PostgreSQL and RabbitMQ. Outside development, placeholder
secrets and the default demo password are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fixtures import DATA_DIR
from router.assessment.policy import DEFAULT_WEIGHTS, AssessmentPolicy
from router.catalogue import set_default_directory
from router.errors import AppError

PLACEHOLDER_SECRETS = frozenset(
    {"", "changethis", "change-me", "secret", "development-only-secret"}
)
DEFAULT_DEMO_PASSWORD = "hotline12345"
MIN_SECRET_LENGTH = 32
BROKER_SCHEMES = ("sqla+sqlite", "sqla+postgresql", "amqp", "amqps", "pyamqp", "memory")


class ConfigurationError(AppError):
    """The configuration cannot be used; the message says which setting and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    model_dir: Path = Field(default=Path(""), description="Directory of the active model artifact")
    model_versions_dir: Path = Field(
        default=Path(""), description="Where the registry keeps one directory per model version"
    )
    model_refresh_seconds: float = Field(default=2.0, ge=0)
    catalogue_dir: Path = Field(
        default=DATA_DIR, description="Reference data: taxonomy, departments, gazetteer"
    )
    model_promotion_tolerance: float = Field(default=0.0, ge=0, le=1)
    training_base_files: list[Path] = Field(default_factory=list)
    training_text_column: str = "text"
    training_label_column: str = "category_code"
    training_department_column: str = "department_code"
    training_demo_corpus_size: int = Field(default=20_000, ge=100)
    training_holdout_share: float = Field(default=0.15, gt=0, lt=0.5)
    training_seed: int = 0
    timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone every API datetime is written in (the database keeps UTC)",
    )
    secret_key: SecretStr = SecretStr("development-only-secret")
    demo_password: SecretStr = SecretStr(DEFAULT_DEMO_PASSWORD)
    seed_demo: bool = True
    # synthetic appeals of the default model, beside the real messages (training.default_model);
    # 40,000 keeps `hotline run` ready within 3 minutes on 2 cores
    demo_corpus_size: int = Field(default=40_000, ge=1_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, description="API processes `hotline serve` runs")
    api_threads: int = Field(
        default=64,
        ge=1,
        description="Request threads per API process; concurrent appeals are group-committed",
    )
    log_level: str = "INFO"
    # Observability (service/observability, docs/observability.md).
    log_format: Literal["text", "json"] = "text"
    metrics_enabled: bool = True
    metrics_token: SecretStr = SecretStr("")
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_dir: Path = Field(default=Path(""), description="Multi-process metric files")
    metrics_cache_seconds: float = Field(default=10.0, ge=0)
    otel_enabled: bool = False
    outbox_relay_seconds: float = Field(default=5.0, gt=0)
    broker_connect_timeout: float = Field(default=3.0, gt=0)
    delivery_amqp_url: str = ""
    # quorum (replicated; the default) or classic, for a broker whose queues were declared
    # classic before: RabbitMQ refuses to redeclare a queue with another type (docs/deployment.md)
    rabbitmq_queue_type: Literal["quorum", "classic"] = "quorum"
    # prefixed to the Celery queues and their exchange, so that two deployments (or test runs)
    # can share one RabbitMQ vhost without taking each other's tasks; a vhost each is better
    task_queue_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$", max_length=64)
    phone_queue_url: str = ""
    webhook_timeout: float = Field(default=10.0, gt=0)
    # the lowest threshold from which auto-dispatch stays >= 95 % precise on real held-out
    # messages (level-1 group right) and on synthetic ones (department right), measured by
    # `python -m benchmarks.real_routing` (docs/models.md)
    auto_dispatch_threshold: float = Field(default=0.85, ge=0, le=1.01)
    token_ttl_minutes: int = Field(default=480, ge=5)
    # Failed sign-ins per account and per client address within the window, counted in the
    # database across processes; past either, sign-in answers 429 without hashing a password.
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_failure_window_seconds: float = Field(default=900.0, gt=0)
    session_cookie_secure: bool | None = None
    # Origins (comma-separated, e.g. https://hotline.example.gov.cn) whose pages may send
    # cookie-authenticated requests besides the service's own host (service.api.csrf).
    allowed_origins: str = ""
    callback_provider: Literal["agent", "gateway"] = "agent"
    callback_delay_hours: float = Field(default=24.0, ge=0)
    callback_retry_hours: float = Field(default=4.0, gt=0)
    callback_max_attempts: int = Field(default=3, ge=1)
    callback_gateway_url: str = ""
    callback_gateway_timeout: float = Field(default=10.0, gt=0)
    callback_gateway_report_url: str = ""
    callback_result_timeout_minutes: float = Field(default=30.0, gt=0)
    duplicate_window_days: float = Field(default=30.0, gt=0, le=366)
    duplicate_suggest_threshold: float = Field(default=0.35, gt=0, le=1)
    duplicate_auto_merge: bool = False
    duplicate_auto_merge_threshold: float = Field(default=0.6, gt=0, le=1)
    # `hotline duplicate-server`'s Unix socket path or host:port: one duplicate index per host
    # instead of one per process (service/duplicate_server.py); empty = each process its own
    duplicate_server: str = ""
    hotspot_bucket_hours: float = Field(default=24.0, gt=0)
    hotspot_baseline_buckets: int = Field(default=28, ge=2)
    hotspot_min_count: int = Field(default=5, ge=1)
    hotspot_min_ratio: float = Field(default=3.0, ge=1)
    hotspot_min_distinct_callers: int = Field(default=5, ge=2)
    hotspot_scan_minutes: float = Field(default=15.0, gt=0)
    # Intake channels (service/channels): WeChat official account, Open311, limits.
    wechat_token: SecretStr = SecretStr("")
    wechat_replay_window_seconds: int = Field(default=300, ge=10)
    open311_api_keys: SecretStr = SecretStr("")
    intake_max_body_bytes: int = Field(default=65_536, ge=1_024)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    intake_rate_limit: int = Field(default=10, ge=1)
    intake_rate_window_seconds: float = Field(default=60.0, gt=0)
    # per client address or API key, whatever callers it names (an office or a partner system
    # submits for many citizens)
    intake_client_rate_limit: int = Field(default=60, ge=1)
    intake_system_departments: str = "hotline"
    # Department assessment (考核, router/assessment): weights of the scored rates as JSON, e.g.
    # HOTLINE_ASSESSMENT_WEIGHTS='{"satisfaction_rate": 40, "closure_on_time_rate": 30}'
    # (a rate left out weighs 0), the red/yellow list thresholds in points, the repeat window.
    assessment_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    assessment_red_below: float = Field(default=80.0, ge=0, le=100)
    assessment_yellow_below: float = Field(default=90.0, ge=0, le=100)
    assessment_repeat_window_days: int = Field(default=30, ge=1, le=366)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"HOTLINE_TIMEZONE is not an IANA time zone: {value!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"HOTLINE_DATABASE_URL is not a database URL: {value!r}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"HOTLINE_DATABASE_URL must be sqlite or postgresql, not {url.get_backend_name()!r}"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = urlsplit(value).scheme
        if scheme not in BROKER_SCHEMES:
            raise ValueError(
                f"HOTLINE_BROKER_URL scheme {scheme!r} is not supported "
                f"(use one of: {', '.join(BROKER_SCHEMES)})"
            )
        return value

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_placeholders(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.var_dir / 'hotline.sqlite3').as_posix()}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{(self.var_dir / 'broker.sqlite3').as_posix()}"
        if self.model_dir == Path(""):
            self.model_dir = self.var_dir / "models"
        if self.metrics_dir == Path(""):
            self.metrics_dir = self.var_dir / "metrics"
        if self.model_versions_dir == Path(""):
            self.model_versions_dir = self.var_dir / "model-versions"
        if not self.delivery_amqp_url and self.uses_rabbitmq:
            self.delivery_amqp_url = self.broker_url
        if not self.phone_queue_url and self.uses_rabbitmq:
            self.phone_queue_url = self.broker_url
        if self.environment != "development":
            secret = self.secret_key.get_secret_value()
            if secret in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "HOTLINE_SECRET_KEY must be a real secret of at least "
                    f"{MIN_SECRET_LENGTH} characters outside development"
                )
            if self.demo_password.get_secret_value() == DEFAULT_DEMO_PASSWORD:
                raise ValueError(
                    "HOTLINE_DEMO_PASSWORD must not be the documented default outside development"
                )
        return self

    @model_validator(mode="after")
    def _check_callback_gateway(self) -> Settings:
        if self.callback_provider == "gateway":
            url = urlsplit(self.callback_gateway_url)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(
                    "HOTLINE_CALLBACK_GATEWAY_URL must be an http(s) URL when "
                    "HOTLINE_CALLBACK_PROVIDER is 'gateway'"
                )
        return self

    @model_validator(mode="after")
    def _check_assessment(self) -> Settings:
        try:
            self.assessment_policy  # noqa: B018  (validates the weights and thresholds together)
        except ValueError as exc:
            raise ValueError(f"HOTLINE_ASSESSMENT_*: {exc}") from None
        return self

    @property
    def assessment_policy(self) -> AssessmentPolicy:
        return AssessmentPolicy(
            weights=dict(self.assessment_weights),
            red_below=self.assessment_red_below,
            yellow_below=self.assessment_yellow_below,
            repeat_window_days=self.assessment_repeat_window_days,
        )

    @property
    def uses_rabbitmq(self) -> bool:
        return urlsplit(self.broker_url).scheme in ("amqp", "amqps", "pyamqp")

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"


def load_settings() -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", exc)).removeprefix("Value error, ")
        field = ".".join(str(part) for part in first.get("loc", ()))
        if field and "HOTLINE_" not in message:
            message = f"HOTLINE_{field.upper()}: {message}"
        raise ConfigurationError(message) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`); the reference
    catalogue of the process is the one they name."""
    settings = load_settings()
    set_default_directory(settings.catalogue_dir)
    return settings
