"""The OAuth 2.0 side of the app: authorization, token, revocation, introspection, discovery.

- :mod:`.parsing`: strict body parsing (RFC 6749 §3.1).
- :mod:`.clients`: client authentication (RFC 6749 §2.3), one class per method.
- :mod:`.errors`: the RFC 6749 §5.2 errors and how each renders.
- :mod:`.endpoint`: the base view of the POST endpoints.
- :mod:`.authorization`: the authorization endpoint with its login and consent steps.
- :mod:`.views`: the token, revocation and introspection endpoints.
- :mod:`.refresh_cookie`: browser mode's refresh token in an HttpOnly cookie.
- :mod:`.cors`: CORS on the token endpoints for browser-mode origins.
- :mod:`.discovery`: the JWKS and the RFC 8414 metadata.
- :mod:`.throttling`: rate limits of the token endpoint.
"""
