import sys

from dynamopy.cli import main

sys.exit(main())
