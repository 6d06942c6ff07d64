"""`python -m tf_style` is the `tf-style` command."""

from tf_style.cli import run

if __name__ == "__main__":
    run()
