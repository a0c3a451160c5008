import sys

from densenet.cli.main import main

sys.exit(main())
