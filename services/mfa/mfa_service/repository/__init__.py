"""Plain-SQL adapters for the mfa schema: one module per table, rows mapped to dataclasses."""
