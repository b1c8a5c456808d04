"""Operations: request ids and JSON logs (`context`, `logs`), Prometheus metrics (`metrics`,
`collector`) and optional OpenTelemetry tracing (`tracing`). docs/observability.md has the list."""
