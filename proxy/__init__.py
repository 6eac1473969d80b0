"""Twisted recording proxy: listeners, upstream connections, Kafka address rewriting."""
