"""One exception family, so the CLI can turn any user error into one line and exit status 2."""


class FusetileError(ValueError):
    """A user-facing error whose message names the source, the bad value and what was expected."""


class CfgError(FusetileError):
    """A Darknet .cfg file (or size override) that cannot describe a network."""


class WeightsError(FusetileError):
    """A weights file that is unreadable, truncated, or does not match the cfg."""


class ImageError(FusetileError):
    """An input image that cannot be read."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every cleanup (temporary files) runs."""


def run_command(prog: str, body) -> int:
    """Runs ``body()`` (which returns an exit status) as a command line does: a user error is one line on
    stderr and status 2; Ctrl-C and SIGTERM are one line and 130 / 143, after cleanup."""
    import signal
    import sys

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return body()
    except FusetileError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{prog}: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated; nothing was written", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
