"""`python -m cea` (also what `torchrun -m cea` runs)."""

from cea.cli import main

if __name__ == "__main__":
    main()
