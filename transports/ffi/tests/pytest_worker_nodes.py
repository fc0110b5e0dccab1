"""Nodes the pytest suite runs in worker processes."""

import os
import sys

import remotemedia


@remotemedia.node("WhoAmI")
class WhoAmI(remotemedia.Node):
    def process(self, data):
        return {"pid": os.getpid(), "executable": sys.executable}


@remotemedia.node("Fails")
class Fails(remotemedia.Node):
    def process(self, data):
        return 1 / 0
