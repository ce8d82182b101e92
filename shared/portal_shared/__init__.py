"""The common library of Portal Account Services."""
