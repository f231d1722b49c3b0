import sys

from crlkit.cli import main

sys.exit(main())
