"""``python -m engine.run``: the command line (see ``engine.cli``). Signals and errors are handled from the
start, before the engine's heavy imports (NumPy, Numba)."""
import sys

from yolo.errors import run_command


def main(argv=None) -> int:
    def command() -> int:
        from engine.cli.main import main as cli
        return cli(argv)
    return run_command("engine.run", command)


if __name__ == "__main__":
    from engine.blas_cpu import restart_with_avx512_kernels
    restart_with_avx512_kernels()
    sys.exit(main())
