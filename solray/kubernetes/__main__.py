"""``python -m solray.kubernetes [kopf run options]``: the operator, all namespaces."""

import sys

from kopf.cli import main

if __name__ == "__main__":
    sys.argv = ["kopf", "run", "--standalone", "--all-namespaces", "-m", "solray.kubernetes.operator", *sys.argv[1:]]
    main()
