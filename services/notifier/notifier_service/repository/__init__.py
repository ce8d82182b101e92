"""Plain-SQL adapters for the notifier schema: one module per table."""
