"""`EchoNode`: returns every input unchanged."""

import remotemedia


@remotemedia.node("EchoNode")
class EchoNode(remotemedia.Node):
    """Returns every input item as it came, of every data type. Audio, video and tensor
    payloads go back as the very buffer they arrived in, so the runtime receives them
    without a copy."""

    def process(self, data):
        return data
