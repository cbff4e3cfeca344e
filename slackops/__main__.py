"""``python -m slackops``."""

from slackops.cli import main

main()
