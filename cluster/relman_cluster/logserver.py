"""The kubelet's log endpoint, for the emulator's pods: ``GET /containerLogs/<namespace>/<pod>/
<container>?tailLines=N&previous=true`` over HTTPS on loopback, which kube-apiserver calls for
``kubectl logs`` (``pods/log``) at the node's InternalIP and kubelet port.

No process runs, so a container's log is what its environment variable
``RELMAN_KUBELET_LOG`` says the process writes (one line per line of the value; every run
writes it again). A container that has not started answers as the kubelet does (400, "is
waiting to start"), and so does ``previous=true`` for a container that never restarted.
The serving certificate is self-signed: kube-apiserver without
``--kubelet-certificate-authority`` does not verify it.
"""

from __future__ import annotations

from relman_cluster.kubelet_logs import KubeletLogServer, LogSource, LogStore, tail

LOG_ENV = "RELMAN_KUBELET_LOG"

__all__ = ["LOG_ENV", "LogServer", "LogSource", "tail"]


class LogServer(KubeletLogServer):
    """Serves ``source``'s logs on ``127.0.0.1:<port>`` (a free one) until :meth:`stop`."""

    def __init__(self, source: LogSource) -> None:
        super().__init__(LogStore(), source)
