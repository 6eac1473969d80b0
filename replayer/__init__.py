"""The fake broker: serves a cassette back so an unmodified client runs offline.

Twisted moves bytes (`server`); everything else is decided per protocol (`kafka`, `amqp`,
`mqtt`) against the recording (`recording`) and counted in one place (`report`). Never opens an
outbound connection and never imports a broker client library.
"""
