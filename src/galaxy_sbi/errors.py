"""Errors that a user can fix: bad config, missing or malformed input files."""


class InputError(ValueError):
    """A problem with a user-supplied input. The message names the file or key and what is wrong."""


class ConfigError(InputError):
    """The configuration does not match workflow/schemas/config.schema.yaml."""
