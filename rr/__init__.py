"""messaging-rr-lab shared core, no sockets: codecs (framers, decoders), protocols (one object per
protocol, the per-connection frame pipeline), cassette (format, writer, reader, verify), redact,
kafka_rewrite, record (the recording glue), normalize (replay match keys), policy."""

__version__ = "0.1.0"
