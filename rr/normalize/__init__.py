"""Match keys for replay, one module per protocol: small named rules that say what of a live
frame must equal the recorded one and what is ignored (ids the client picks, clocks, CRCs).

Pure functions on decoded frames: no sockets, no Twisted, no cassette I/O.
"""
