"""`python -m segstudio.cli`: the same as the `segstudio` command."""

from segstudio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
