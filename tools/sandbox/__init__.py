"""The local sandbox: the request path of the stack on this machine (see ``python -m tools.sandbox``)."""
