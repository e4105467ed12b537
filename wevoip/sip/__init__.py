"""The SIP stack: messages, transports, transactions, authentication and the registrar."""
