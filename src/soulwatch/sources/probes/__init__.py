"""sources/probes."""
