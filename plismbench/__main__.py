"""``python -m plismbench`` (also what ``torchrun -m plismbench`` runs)."""

from plismbench.cli import main

main()
