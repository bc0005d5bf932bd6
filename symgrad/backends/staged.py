"""A module's build in two steps, for a module that links what is still compiling (in a new
build cache, the product helpers' object and the thread pool, symgrad.backends.objects and
threads): the module is compiled to an object file (-c) while they compile, and linked once
they are there, instead of waiting for them before its compiler starts. On two cores that
takes the module's compile off the critical path of a first compile.

The library, its cache entry and its key are those a one-step `build.Build` of the same
source, flags and link makes. Where something it waits for did not build, the build fails
with `Unmet`, and the unit generates the module again for what is there (symgrad.unit)."""
from __future__ import annotations

import os
import shutil
import subprocess

from symgrad.build import LIBRARY, Build, CompileError, _pending


class Unmet(CompileError):
    """What a staged module was to link did not build: generate it again without."""


class _Done:
    """A finished process, as `Build._finish` reads one (the compile step's, when it failed)."""

    def __init__(self, returncode, output):
        self.returncode, self._output = returncode, output

    def poll(self):
        return self.returncode

    def communicate(self, timeout=None):
        return self._output, None


class StagedBuild(Build):
    """`waits`: functions that wait for each file the module links, True once it is there."""

    def __init__(self, source, symbol, waits, **kw):
        self.waits, self._linking = list(waits), False
        super().__init__(source, symbol, **kw)

    def _command(self, suffix) -> list:
        """The compile step; the link step, `self._link_cmd`, runs once the waits are met."""
        obj = str(self.tmp / "kernel.o")
        compile_flags = [f for f in self.flags if f != "-shared" and not f.startswith("-fuse-ld")]
        defines = [f for f in self.link if f.startswith("-D")]
        self._link_cmd = [self.cc, *self.flags, "-o", str(self.tmp / LIBRARY), obj,
                          *[f for f in self.link if not f.startswith("-D")], "-lm"]
        self._linking = False
        return [self.cc, *compile_flags, *defines, "-c", "-o", obj, str(self.tmp / f"kernel{suffix}")]

    def _publish_or_fail(self, status: int, output: str):
        """As a build's, without the module's object file: the entry holds what a one-step
        build's does (the cache's size limits count on it)."""
        (self.tmp / "kernel.o").unlink(missing_ok=True)
        return super()._publish_or_fail(status, output)

    def _finish(self):
        with self._finish_lock:
            if self.proc is not None and self.owner != os.getpid():
                self._adopt()                   # (a forked child: compiles again, staged)
            proc = self.proc
            if proc is not None and not self._linking:
                output, _ = proc.communicate()
                if proc.returncode != 0:        # the base class reports the failure
                    self.proc = _Done(proc.returncode, output)
                elif all(wait() for wait in self.waits):
                    self._linking = True
                    self.proc = subprocess.Popen(self._link_cmd, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True)
                else:
                    self.proc = None
                    _pending.discard(self)
                    shutil.rmtree(self.tmp, ignore_errors=True)
                    self.error = Unmet("what the module links did not build")
                    return
        super()._finish()
