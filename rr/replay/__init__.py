"""What every protocol's replay session shares, without sockets or Twisted: the recording as a
session sees it (`recording`), the session base and its context (`session`).

The sessions themselves live with their protocol (`rr.protocols.<proto>.session`); the fake
broker (`replayer/`) is the Twisted shell that runs them.
"""
