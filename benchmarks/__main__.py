"""`python -m benchmarks`: see benchmarks/run.py and benchmarks/README.md."""

from benchmarks.run import main

raise SystemExit(main())
