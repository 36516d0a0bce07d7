"""alerting/notifiers."""
