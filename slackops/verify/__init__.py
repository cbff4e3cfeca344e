"""``slackops verify``: run your bot against the simulator under chaos and score what it lost or did twice.

Library API::

    from slackops.verify import VerifyOptions, run_verify
    result = run_verify(VerifyOptions(command=["python", "bot.py"], scenario="refresh-churn"))
    result.exit_code      # 0 pass, 1 acked late only, 2 lost or processed twice
    result.scorecard      # slackops.simulator.Scorecard

The bot is started with ``SLACK_APP_TOKEN`` / ``SLACK_BOT_TOKEN`` set to simulator-only tokens, the simulator's
Web API base URL in ``SLACKOPS_SIM_API_URL`` (and ``SLACK_API_URL``), and — for Python bots — the zero-code shim
(:mod:`slackops.verify.shim`) first on ``PYTHONPATH`` so slack-sdk and Bolt talk to the simulator unchanged.
"""

from slackops.verify.runner import LLMStats, VerifyOptions, VerifyResult, run_verify, shim_dir

__all__ = ["LLMStats", "VerifyOptions", "VerifyResult", "run_verify", "shim_dir"]
