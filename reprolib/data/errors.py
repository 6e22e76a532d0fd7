"""The error every loader raises for input that does not follow its format.

It lives in a module of its own, with no imports, so that readers which must not pull in torch (the
restricted pickle reader, run in a subprocess by the hostile-input tests) share the one class.
"""


class DataFormatError(ValueError):
    """Raised for input that does not follow the dataset format; the message names the file."""
