"""Atomic output: every file of a result folder is written to a temp file
`.tmp.<name>.XXXXXX` beside it and moved into place (os.replace) once complete,
so a half-written file never replaces a good one."""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _file_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class OutDir:
    def __init__(self, path):
        self.path = Path(path)
        self.mode = _file_mode()

    def __truediv__(self, name):
        return self.path / name

    def temp(self, name, suffix=""):
        """A new empty temp file for `name` (its path); commit() or unlink it."""
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".tmp.{name}.", suffix=suffix)
        os.close(fd)
        return Path(tmp)

    def commit(self, tmp, name):
        os.chmod(tmp, self.mode)
        os.replace(tmp, self.path / name)

    @contextmanager
    def atomic(self, name, mode="w"):
        """An open file that becomes `name` if the block completes, else vanishes."""
        tmp = self.temp(name)
        try:
            with open(tmp, mode) as f:
                yield f
            self.commit(tmp, name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write(self, name, text):
        with self.atomic(name) as f:
            f.write(text)

    def write_json(self, name, obj, indent=2):
        self.write(name, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")

    def cleanup(self):
        """Remove every temp file left by an interrupted step."""
        for p in self.path.glob(".tmp.*"):
            p.unlink(missing_ok=True)
