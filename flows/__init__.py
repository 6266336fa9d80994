"""Prefect flows and deployments that run the agentune DVC pipeline (see docs/prefect.md)."""
