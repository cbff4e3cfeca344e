__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import slackops` stays light (the CLI and the records model import it); instrument() pulls in the
    # protocol and store packages only when a bot actually uses it.
    if name == "instrument":
        from slackops.watch.instrument import instrument

        return instrument
    raise AttributeError(f"module 'slackops' has no attribute {name!r}")
