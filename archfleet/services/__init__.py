"""Services: what each host should run (desired state), the registry pre-flight, and proof after a sync."""
