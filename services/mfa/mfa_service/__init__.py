"""The mfa service of Portal Account Services."""
