"""messaging-rr-lab shared core: codecs, cassette, normalize, redact, policy. No sockets here."""

__version__ = "0.1.0"
