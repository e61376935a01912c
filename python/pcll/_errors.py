"""The one exception type of the package."""


class PcllError(Exception):
    """An error of the pcll library: an invalid artifact, an input it cannot pack, a budget
    that cannot hold the model. `code` is the decoder's error code (the same numbers as
    libpcll's `pcll_error_message`) where the error came from decoding, else None."""

    def __init__(self, message, code=None):
        self.code = code
        super().__init__(message)
