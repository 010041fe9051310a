"""TLS that follows certificate rotation without a restart, as Prometheus' exporter-toolkit does.

exporter-toolkit re-reads the web config's certificate and key for every new TLS connection; here a
`ReloadingTLS` keeps the last good `SSLContext` and, on a new connection's ClientHello (the context's
`sni_callback`, run in the connection's own thread, never in the accept loop), at most once per
`check_interval` compares the files' (mtime, size, inode) with those it was built from. Changed files
(certbot renew flipping its symlinks, an `install` over the old file) are loaded into a new context that
this and every later connection use; existing connections keep theirs.

A new pair that does not load (a key that does not match the certificate, a truncated file) keeps the
last good context in service. Tools replace the certificate and the key one after the other, so a failed
build is reported only when the same files still fail at a check `check_interval` later: an error logged
once for those files and counted (`on_error`, the agent's `hostwarden_web_tls_reload_errors_total`).
Files that change again are tried again.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0

FileStamp = tuple[int, int, int] | None  # (st_mtime_ns, st_size, st_ino); None: cannot stat
Signature = tuple[FileStamp, ...]


def file_signature(paths: Iterable[str]) -> Signature:
    """The stamps of `paths` (symlinks followed: a flipped symlink is a change)."""
    out: list[FileStamp] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class TLSBuildError(Exception):
    """The certificate files could not be turned into an SSLContext (the message says why)."""


class ReloadingTLS:
    """The SSLContext for new connections of one listener; see the module docstring.

    `build()` returns a fresh context from the files or raises TLSBuildError; `files` are the paths it
    reads; `initial` is the context already built from them at load time.
    """

    def __init__(self, build: Callable[[], ssl.SSLContext], files: Iterable[str], initial: ssl.SSLContext, *,
                 name: str = "web", check_interval: float = CHECK_INTERVAL_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic, on_error: Callable[[], None] | None = None) -> None:
        self.name = name
        self.files = tuple(files)
        self.check_interval = check_interval
        self.on_error = on_error
        self._build = build
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._signature = file_signature(self.files)
        self._checked_at = monotonic()
        self._failed: tuple[Signature, float] | None = None  # files that failed to load, first seen at
        self._reported: Signature | None = None  # the failing files already logged and counted
        self.rotations = 0
        self._ctx = self._adopt(initial)

    def _adopt(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        if self.files:
            ctx.sni_callback = self._on_client_hello
        return ctx

    def context(self) -> ssl.SSLContext:
        """The context to wrap a newly accepted connection with (cheap: no file access)."""
        return self._ctx

    def _on_client_hello(self, sslsock: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None,
                         ctx: ssl.SSLContext) -> None:
        """Called by OpenSSL with or without SNI; must never raise (the handshake would fail)."""
        try:
            fresh = self.refresh()
            if fresh is not ctx:
                sslsock.context = fresh  # certificate and key of the new context from this handshake on
        except Exception:
            log.exception("tls %s: checking the certificate files failed", self.name)

    def refresh(self) -> ssl.SSLContext:
        """The current context after checking the files (at most once per check_interval)."""
        now = self._monotonic()
        if now - self._checked_at < self.check_interval or not self.files:
            return self._ctx
        if not self._lock.acquire(blocking=False):  # another handshake is checking: use what is there
            return self._ctx
        try:
            if now - self._checked_at < self.check_interval:
                return self._ctx
            self._checked_at = now
            sig = file_signature(self.files)
            if sig == self._signature or sig == self._reported:
                return self._ctx
            try:
                ctx = self._build()
            except TLSBuildError as e:
                self._build_failed(sig, now, str(e))
                return self._ctx
            self._ctx = self._adopt(ctx)
            self._signature, self._failed, self._reported = sig, None, None
            self.rotations += 1
            log.info("tls %s: certificate reloaded from %s", self.name, ", ".join(self.files))
            return self._ctx
        finally:
            self._lock.release()

    def _build_failed(self, sig: Signature, now: float, why: str) -> None:
        if self._failed is None or self._failed[0] != sig:
            self._failed = (sig, now)  # maybe half-way through a renewal: look again before reporting
            return
        if now - self._failed[1] < self.check_interval:
            return
        self._reported = sig
        log.error("tls %s: the changed certificate files do not load; still serving the previous certificate: %s",
                  self.name, why)
        if self.on_error is not None:
            self.on_error()


class FixedTLS:
    """A context that never changes (inline PEM, or a caller that passes an SSLContext)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx

    def context(self) -> ssl.SSLContext:
        return self._ctx
