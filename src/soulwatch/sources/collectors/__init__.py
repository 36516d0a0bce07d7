"""sources/collectors."""
