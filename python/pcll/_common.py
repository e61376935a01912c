"""What both loaders share: the package's one exception type and the name index of an
artifact's tensors."""


class PcllError(Exception):
    """An error of the pcll library: an invalid artifact, an input it cannot pack, a budget
    that cannot hold the model. `code` is the decoder's error code (the same numbers as
    libpcll's `pcll_error_message`) where the error came from decoding, else None."""

    def __init__(self, message, code=None):
        self.code = code
        super().__init__(message)


class TensorIndex:
    """Name access to an artifact's tensors; subclasses set `_index` ({name: table index}) and
    `_art` (with `version`)."""

    _index = {}

    @property
    def version(self):
        return self._art.version

    def keys(self):
        return list(self._index)

    def __len__(self):
        return len(self._index)

    def __contains__(self, name):
        return name in self._index

    def __iter__(self):
        return iter(self._index)
