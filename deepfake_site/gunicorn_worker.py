"""gunicorn's gthread worker, with a connection's lingering close taken off its event loop.

gunicorn 27 closes a connection whose request body was not read (a request refused before its body, such as a
CSRF failure or an upload over the limit) "gracefully" (RFC 9112 section 9.6): it half-closes, then reads what
the client still sends for up to 2 seconds. It does so in ``finish_request``, on the worker's one event-loop
thread, so a client that sends a byte a second stalls every other connection of that worker (``/healthz``
included) for 2 seconds per refused request. Here that linger runs on the worker's thread pool instead: it holds
one thread, as a slow client does anyway, and the loop goes on accepting and dispatching.

Only gunicorn's documented ``worker_class`` hook is used; the override relies on ``finish_request(conn, fs)``,
``conn.close(graceful=...)`` and ``tpool``, which the tests check against the installed gunicorn.
"""

from gunicorn.workers import gthread


class ThreadWorker(gthread.ThreadWorker):
    def finish_request(self, conn, fs):
        close = conn.close

        def close_off_the_loop(graceful=False):
            if graceful:
                self.tpool.submit(close, graceful=True)
            else:
                close()

        conn.close = close_off_the_loop
        super().finish_request(conn, fs)
