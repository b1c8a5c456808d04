"""Access: accounts and roles, department API keys, the audit log, and personal-data masking.

The HTTP side (login, bearer/API-key/cookie resolution, role checks) is `service.api.security`
and `service.api.auth`; this package holds the tables, the primitives and the service functions.
"""
