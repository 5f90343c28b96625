"""Report: tidy tables, derived metrics, findings, summaries and figures."""
