"""Job runtime: the fork server for local jobs, job environment, provenance records."""
