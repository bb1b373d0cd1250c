"""blockcache agent: origin block store (control host) or edge block cache + service executor."""
