"""pyinfra connectors archfleet adds (registered under pyinfra.connectors in pyproject.toml)."""
