import sys

from rrlab.cli import main

sys.exit(main())
