"""Plain-SQL adapters for the profile schema: one module per table or concern, rows mapped to dataclasses.

Only modules here hold SQL; the service layer calls them with a pool or a connection (its transaction).
"""
