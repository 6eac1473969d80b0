"""Pure wire codecs: incremental framers and decoders. Never imports Twisted or opens a socket."""
