import sys

from aspl.cli import main

sys.exit(main())
