"""The audit trail: tamper-evident, append-only records of what logwarden saw and decided."""
