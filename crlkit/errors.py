"""Errors a user can cause. The CLI prints these as one message, without a traceback."""


class CrlkitError(ValueError):
    """Invalid user input (an unknown name, option or value); the message names the field
    and, where there is a closed set, the valid choices."""
