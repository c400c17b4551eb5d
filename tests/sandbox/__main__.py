import sys

from tests.sandbox import main

sys.exit(main(sys.argv[1:]))
