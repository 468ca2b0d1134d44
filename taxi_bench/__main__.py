import sys

from taxi_bench.cli import main

sys.exit(main())
