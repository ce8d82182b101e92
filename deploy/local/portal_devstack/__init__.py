"""Starts the real stack's servers from the OS binaries on loopback, for `make up` and the tests."""
