"""``bascule demo``: the whole loop, told as a story on embedded defaults (see :mod:`.run`)."""

from bascule.cli.demo.run import run_story

__all__ = ["run_story"]
