"""``bascule demo``: the whole loop, told as a story on embedded defaults."""

from bascule.cli.demo.spine import run_demo

__all__ = ["run_demo"]
