import multiprocessing

from segstudio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # worker processes in a frozen (PyInstaller) build
    raise SystemExit(main())
