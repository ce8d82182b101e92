"""The profile service of Portal Account Services."""
