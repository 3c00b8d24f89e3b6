"""`python -m retriever.cli`: the same command as `retriever`."""

from .main import main

main()
