"""Custom pyinfra facts. Each fact's ``process`` is pure and covered by spec files in tests/facts/."""
