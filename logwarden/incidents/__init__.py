"""Incident state: alerts become incidents a human sees once, whatever retries or restarts do."""
