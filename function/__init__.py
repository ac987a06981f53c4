"""Related-content recommendations: fetch -> extract -> vectorize -> lookup -> log."""

__version__ = "0.1.0"
