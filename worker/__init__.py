"""The demo worker: produces seeded envelopes to a broker, consumes them back, aggregates.

It is the "unmodified worker" of the lab: it imports nothing from rr, proxy, replayer or
brokers and knows nothing about recording or replay. It is configured only by flags and env.
"""
