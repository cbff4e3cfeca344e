"""User-facing hint texts, in one place so every command says the same thing the same way."""

from __future__ import annotations

from slackops.errors import AuthError

APP_TOKEN_HOWTO = (
    "Socket Mode needs an app-level token (xapp-...) with the connections:write scope: create one under "
    "your app's Basic Information > App-Level Tokens, then set SLACK_APP_TOKEN or pass --app-token."
)

#: What to tell a user for each error ``apps.connections.open`` can return that retrying will not fix.
FATAL_OPEN_ERRORS: dict[str, str] = {
    "not_authed": "No token was sent. " + APP_TOKEN_HOWTO,
    "invalid_auth": "Slack does not recognise this token (revoked, mistyped or from another workspace). "
    + APP_TOKEN_HOWTO,
    "not_allowed_token_type": "This token type cannot open Socket Mode connections. " + APP_TOKEN_HOWTO,
    "missing_scope": "The app-level token lacks the connections:write scope: add it under Basic Information "
    "> App-Level Tokens (create a new token with connections:write).",
    "account_inactive": "The token belongs to a deactivated user or a deleted app: create a new app-level token.",
    "token_revoked": "The token was revoked: create a new app-level token.",
    "token_expired": "The token has expired: create a new app-level token.",
    "team_disabled": "The workspace is disabled.",
    "link_disabled": "Socket Mode is turned off for this app: enable it under Settings > Socket Mode.",
}

#: Errors worth retrying with backoff (Slack-side trouble, not ours).
RETRYABLE_OPEN_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})


def check_app_token(token: str | None) -> str:
    """Return ``token`` if it looks like an app-level token, else raise :class:`AuthError` saying what to do.

    Catching a bot or user token here saves a round trip and an unhelpful ``not_allowed_token_type``.
    """
    if not token:
        raise AuthError("no app token given", error="not_authed", hint=APP_TOKEN_HOWTO)
    token = token.strip()
    for prefix, what in (("xoxb-", "a bot token"), ("xoxp-", "a user token"), ("xoxe-", "a refresh token")):
        if token.startswith(prefix):
            raise AuthError(
                f"the app token starts with {prefix}: that is {what}",
                error="not_allowed_token_type",
                hint=APP_TOKEN_HOWTO,
            )
    if not token.startswith("xapp-"):
        raise AuthError(
            "the app token does not start with xapp-", error="not_allowed_token_type", hint=APP_TOKEN_HOWTO
        )
    return token


def auth_error_for(error: str) -> AuthError:
    """The :class:`AuthError` for a fatal ``apps.connections.open`` (or ``link_disabled``) error code."""
    hint = FATAL_OPEN_ERRORS.get(error, APP_TOKEN_HOWTO)
    return AuthError(f"Slack refused to open a Socket Mode connection: {error}", error=error, hint=hint)
