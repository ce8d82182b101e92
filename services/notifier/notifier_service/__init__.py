"""The notifier service of Portal Account Services."""
