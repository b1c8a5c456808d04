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

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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
    secret_key: SecretStr = SecretStr("development-only-secret")
    demo_password: SecretStr = SecretStr(DEFAULT_DEMO_PASSWORD)
    seed_demo: bool = True
    demo_corpus_size: int = Field(default=60_000, ge=1_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    outbox_relay_seconds: float = Field(default=5.0, gt=0)
    broker_connect_timeout: float = Field(default=3.0, gt=0)
    delivery_amqp_url: str = ""
    phone_queue_url: str = ""
    webhook_timeout: float = Field(default=10.0, gt=0)
    auto_dispatch_threshold: float = Field(default=0.85, ge=0, le=1.01)
    token_ttl_minutes: int = Field(default=480, ge=5)
    session_cookie_secure: bool | None = None

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
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return load_settings()
