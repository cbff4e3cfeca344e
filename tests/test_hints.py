from __future__ import annotations

import pytest

from slackops.errors import AuthError
from slackops.hints import auth_error_for, check_app_token


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("xoxb-1-2-abc", "bot token"),
        ("xoxp-1-2-abc", "user token"),
        ("xoxe-1-abc", "refresh token"),
        ("hello", "does not start with xapp-"),
    ],
)
def test_wrong_token_types_say_what_to_do(token, says):
    with pytest.raises(AuthError) as err:
        check_app_token(token)
    assert says in err.value.message
    assert "App-Level Tokens" in err.value.hint
    assert err.value.error == "not_allowed_token_type"


def test_missing_token():
    with pytest.raises(AuthError) as err:
        check_app_token(None)
    assert err.value.error == "not_authed"


def test_app_token_passes():
    assert check_app_token(" xapp-1-A111-222-abc\n") == "xapp-1-A111-222-abc"


@pytest.mark.parametrize("code", ["invalid_auth", "missing_scope", "link_disabled", "account_inactive"])
def test_fatal_open_errors_have_hints(code):
    err = auth_error_for(code)
    assert code in err.message and err.hint
