"""The GDPR engine: consent ledger, privacy requests, audit chain, card-data guard."""
