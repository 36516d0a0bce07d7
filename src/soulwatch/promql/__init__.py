"""PromQL: parsing, evaluation over a storage, and the test-script runner."""
