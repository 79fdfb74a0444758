"""Test helpers other tests reuse: synthetic OpenMetrics, backfill, a Prometheus on it."""
