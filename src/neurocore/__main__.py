import sys

from neurocore.cli import main

sys.exit(main())
